"""Gemma 3 (Gemma3ForConditionalGeneration) as ONNX Runtime GenAI's "gemma3" multimodal pipeline.

What the runtime (0.18) does with a Gemma 3 prompt, and so what the model must be:
- its Gemma image processor replaces each `<start_of_image>` in the prompt with
  "\\n\\n<start_of_image>" + 256 x `<image_soft_token>` + "<end_of_image>\\n\\n" (256 is fixed in
  the runtime, as in every released Gemma 3): `mm_tokens_per_image` must be 256 and the
  tokenizer must have those three tokens;
- pixels are resized to the tower's square input, rescaled and normalised by
  onnxruntime-extensions (processor_config.json below, from the model's own settings); no
  pan-and-scan crops.
- the decoder attends causally everywhere. transformers' Gemma 3 lets the image tokens of one
  image attend to each other both ways during the prompt; the exported decoder does not, so its
  logits after an image differ a little from transformers' (verify_vlm.py measures how much and
  checks the graph exactly against the causal computation).
"""

from __future__ import annotations

from pathlib import Path

from engine.errors import EdgetuneError
from exporters.onnx.vlm_pipelines import RESAMPLE, VlmPipeline, register_vlm_pipeline, require_tokens

RUNTIME_IMAGE_TOKENS = 256
TOKENS = ["<start_of_image>", "<image_soft_token>", "<end_of_image>"]


def _size(config: dict) -> int:
    return int(config["vision_config"]["image_size"])


def check(config: dict, image: dict, model_dir: Path) -> None:
    tokens = int(config.get("mm_tokens_per_image") or 256)
    if tokens != RUNTIME_IMAGE_TOKENS:
        raise EdgetuneError(f"{model_dir} turns an image into {tokens} tokens (mm_tokens_per_image), but ONNX Runtime "
                            f"GenAI's Gemma 3 pipeline always expands an image into {RUNTIME_IMAGE_TOKENS} (as every "
                            f"released Gemma 3 does). Export this model to GGUF instead: engine export gguf ...")
    if image.get("do_pan_and_scan"):
        raise EdgetuneError(f"{model_dir}'s image processor crops large images (do_pan_and_scan), which ONNX Runtime "
                            f"GenAI's Gemma 3 pipeline does not do. Set do_pan_and_scan to false in its processor "
                            f"settings (the default) and train/export with that.")
    size = image.get("size") or {}
    if size and (size.get("height"), size.get("width")) != (_size(config), _size(config)):
        raise EdgetuneError(f"{model_dir}'s image processor resizes to {size}, but its vision tower takes "
                            f"{_size(config)}x{_size(config)} pixels; the ONNX pipeline needs the two to agree.")
    require_tokens(model_dir, TOKENS, "ONNX Runtime GenAI's Gemma 3 pipeline writes into every image prompt")


def processor_config(config: dict, image: dict) -> dict:
    side = _size(config)
    resample = RESAMPLE.get(int(image.get("resample", 2)), "LINEAR")
    ops = [
        {"name": "decode_image", "type": "DecodeImage", "attrs": {"color_space": "RGB"}},
        {"name": "resize", "type": "Resize",
         "attrs": {"interpolation": resample, "width": side, "height": side, "keep_aspect_ratio": 0}},
        {"name": "rescale", "type": "Rescale", "attrs": {"rescale_factor": float(image.get("rescale_factor", 1 / 255))}},
        {"name": "normalize", "type": "Normalize",
         "attrs": {"mean": list(image.get("image_mean", [0.5] * 3)), "std": list(image.get("image_std", [0.5] * 3))}},
        {"name": "to_channel_first", "type": "Permute3D", "attrs": {"dims": [2, 0, 1]}},
    ]
    return {"processor": {"name": "gemma_3_image_processing", "transforms": [{"operation": op} for op in ops]}}


def vision(model):
    """The tower + projector on one square image: pixel_values [images, 3, H, W] -> [images x 256, hidden]."""
    import torch

    from exporters.onnx.vlm_graphs import image_features_module

    side = int(model.config.vision_config.image_size)
    return (image_features_module(model), {"pixel_values": torch.zeros(1, 3, side, side)},
            {"pixel_values": {0: "num_images"}, "image_features": {0: "num_image_tokens"}})


GEMMA3 = register_vlm_pipeline(VlmPipeline(
    arch="Gemma3ForConditionalGeneration", families="Gemma 3 4B/12B/27B with images", genai_type="gemma3",
    check=check, processor_config=processor_config, vision=vision,
))
