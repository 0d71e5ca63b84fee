"""The two graphs a vision-language export adds beside the builder's decoder, traced from the HF model.

ONNX Runtime GenAI runs a VLM as three ONNX models (its "multimodal pipeline"):

    vision.onnx     pixel_values -> image_features        (vision tower + projector)
    embedding.onnx  input_ids, image_features -> inputs_embeds
    model.onnx      inputs_embeds, attention_mask, KV cache -> logits   (the builder's, exclude_embeds)

The embedding graph runs at every step; after the prompt it gets an empty image_features, so
the merge must not index into it then. It looks each image token's row up by its running
count among the image tokens (row 0 is a zero row that non-image tokens point at), which
traces to CumSum/Gather/Where and works for any number of image tokens, none included.

Both are traced with torch.onnx's TorchScript exporter (dynamo=False: the dynamo exporter
needs onnxscript, which edgetune does not ship), in fp32; the embedding graph's output is cast
to the decoder's input type (fp16 for GPU targets).
"""

from __future__ import annotations

from pathlib import Path

OPSET = 17


def _torch():
    import torch

    return torch


def image_features_module(model):
    """pixel_values [images, 3, H, W] -> image_features [images x tokens per image, hidden]: tower + projector.

    Rank 2, as onnxruntime-genai (0.18) hands the embedding graph an empty rank-2 image_features
    on a prompt without images; it allocates the vision output for one image's tokens, so a
    prompt holds at most one image (the chat backend says so before it runs)."""
    torch = _torch()

    class ImageFeatures(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, pixel_values):
            out = self.model.model.get_image_features(pixel_values=pixel_values)
            out = getattr(out, "pooler_output", out)  # transformers 5 returns an output object
            return out.reshape(-1, out.shape[-1])

    return ImageFeatures().eval()


def merged_embedding_module(model, image_token_id: int, out_dtype):
    """input_ids [b, s], image_features [image tokens, hidden] -> inputs_embeds [b, s, hidden] (out_dtype)."""
    torch = _torch()
    embed = model.get_input_embeddings()  # Gemma's scales by sqrt(hidden) itself, as the HF forward does

    class MergedEmbedding(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = embed

        def forward(self, input_ids, image_features):
            text = self.embed(input_ids)
            hidden = text.shape[-1]
            is_image = input_ids == image_token_id
            rows = torch.cat([torch.zeros(1, hidden, dtype=text.dtype), image_features.reshape(-1, hidden).to(text.dtype)])
            flags = is_image.reshape(-1).to(torch.int64)
            picked = rows[torch.cumsum(flags, 0) * flags].reshape(text.shape)
            return torch.where(is_image.unsqueeze(-1), picked, text).to(out_dtype)

    return MergedEmbedding().eval()


def export_graph(module, args: tuple, path: Path, inputs: dict[str, dict], outputs: dict[str, dict]) -> Path:
    """Trace `module` on `args` into `path`; inputs/outputs map each name to its dynamic axes {dim: name}."""
    import warnings

    torch = _torch()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TracerWarnings about Python-side shape checks, and the exporter's deprecation note
        torch.onnx.export(module, args, str(path), input_names=list(inputs), output_names=list(outputs),
                          dynamic_axes={**inputs, **outputs}, opset_version=OPSET, dynamo=False)
    return path
