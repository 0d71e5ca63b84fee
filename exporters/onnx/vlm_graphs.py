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
to the decoder's input type (fp16 for GPU targets). For the smaller precisions the embedding
table is stored in fp16 or int8 and the vision graph's weights in int8 (VISION_AND_TABLE).
"""

from __future__ import annotations

from pathlib import Path

OPSET = 17

# export precision -> (vision graph weights, embedding table storage)
VISION_AND_TABLE = {"fp32": ("fp32", "fp32"), "fp16": ("fp32", "fp16"), "int8": ("int8", "int8"), "int4": ("int8", "int8")}


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


def merged_embedding_module(model, image_token_id: int, out_dtype, table: str = "fp32"):
    """input_ids [b, s], image_features [image tokens, hidden] -> inputs_embeds [b, s, hidden] (out_dtype).

    `table`: how the token-embedding table is stored in the graph. "fp32"; "fp16" (half the size);
    "int8": one signed byte per value and an fp32 scale per row (symmetric, a quarter of fp32;
    Gemma 3 4B's 262k x 2560 table is 2.7 GB in fp32, 0.67 GB in int8). The gathered rows are
    turned back into fp32 before the image features are merged in."""
    torch = _torch()
    embed = model.get_input_embeddings()
    weight = embed.weight.detach().float()
    scale = float(getattr(embed, "embed_scale", 1.0))  # Gemma multiplies its embeddings by sqrt(hidden)

    class MergedEmbedding(torch.nn.Module):
        def __init__(self):
            super().__init__()
            if table == "int8":
                rows = weight.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / 127
                self.register_buffer("table", torch.round(weight / rows).clamp(-127, 127).to(torch.int8))
                self.register_buffer("row_scale", rows * scale)
            else:
                self.register_buffer("table", weight.to(torch.float16 if table == "fp16" else torch.float32))
                self.register_buffer("row_scale", torch.tensor(scale))

        def forward(self, input_ids, image_features):
            text = self.table[input_ids].to(torch.float32)
            text = text * (self.row_scale[input_ids] if table == "int8" else self.row_scale)
            hidden = text.shape[-1]
            is_image = input_ids == image_token_id
            rows = torch.cat([torch.zeros(1, hidden, dtype=text.dtype), image_features.reshape(-1, hidden).to(text.dtype)])
            flags = is_image.reshape(-1).to(torch.int64)
            picked = rows[torch.cumsum(flags, 0) * flags].reshape(text.shape)
            return torch.where(is_image.unsqueeze(-1), picked, text).to(out_dtype)

    return MergedEmbedding().eval()


def quantize_vision_int8(path: Path) -> None:
    """Replace the vision graph at `path` by one with int8 MatMul weights (onnxruntime's dynamic quantisation:
    activations quantised per call), about a quarter of the fp32 size; NMSE about 1e-4 on the tiny towers."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = path.with_name(path.stem + ".int8.onnx")
    logging.getLogger("root").setLevel(logging.ERROR)  # its "please consider pre-processing" advice
    quantize_dynamic(str(path), str(tmp), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"],
                     use_external_data_format=path.with_name(path.name + ".data").exists())
    for old in (path, path.with_name(path.name + ".data")):
        old.unlink(missing_ok=True)
    _resave(tmp, path)
    tmp.unlink(missing_ok=True)
    for leftover in tmp.parent.glob(tmp.name + "*"):
        leftover.unlink()


def export_graph(module, args: tuple, path: Path, inputs: dict[str, dict], outputs: dict[str, dict]) -> Path:
    """Trace `module` on `args` into `path`; inputs/outputs map each name to its dynamic axes {dim: name}.

    A graph over 1 GB of weights keeps them in one `path.data` file beside it (the exporter alone
    would write one file per tensor past protobuf's 2 GB)."""
    import tempfile
    import warnings

    torch = _torch()
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".trace-") as tmp:
        traced = Path(tmp) / path.name
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # TracerWarnings about Python-side shape checks, and the exporter's deprecation note
            torch.onnx.export(module, args, str(traced), input_names=list(inputs), output_names=list(outputs),
                              dynamic_axes={**inputs, **outputs}, opset_version=OPSET, dynamo=False)
        _resave(traced, path)
    return path


EXTERNAL_DATA_BYTES = 1 << 30


def _resave(source: Path, path: Path) -> None:
    """Save the graph at `source` as `path`, its weights inline or, past EXTERNAL_DATA_BYTES, in `path.data`."""
    import onnx_ir as ir

    model = ir.load(str(source))
    size = sum(v.const_value.nbytes for v in model.graph.initializers.values() if v.const_value is not None)
    if size > EXTERNAL_DATA_BYTES:
        ir.save(model, str(path), external_data=path.name + ".data")
    else:
        ir.save(model, str(path))
