"""Qwen2.5-VL (Qwen2_5_VLForConditionalGeneration) as ONNX Runtime GenAI's "qwen2_5_vl" multimodal pipeline.

What the runtime (0.18) does with a Qwen2.5-VL prompt, and so what the export holds:
- its Qwen image processor (onnxruntime-extensions: processor_config.json below, from the
  model's own settings) resizes each picture with Qwen's smart resize between min_pixels and
  max_pixels (capped at MAX_IMAGE_TOKENS image tokens: edit processor_config.json to change it),
  normalises it and cuts it into temporal x patch x patch patches, flattened as the HF processor
  does; the prompt's `<|image_pad|>` becomes grid_t*grid_h*grid_w / merge² pads;
- vision.onnx (vlm_qwen_vision.py) runs once per image with that image's patches and
  `image_grid_thw` [1, 3]; the decoder (the builder's, M-RoPE) gets its 3-D positions from the
  runtime, which reads image_token_id / vision_start_token_id from genai_config (without them
  it assumes a real Qwen vocabulary's ids);
- the runtime builds the prompt's attention mask as `input_ids != pad_token_id`, so a pad id
  that a prompt contains (SmolLM2-style tokenizers pad with `<|im_end|>`) would blank those
  positions: such a pad id is replaced by `<|endoftext|>` in genai_config (a real Qwen pads with it).
"""

from __future__ import annotations

from pathlib import Path

from engine.errors import EdgetuneError
from exporters.onnx.vlm_pipelines import VlmPipeline, register_vlm_pipeline, require_tokens

TOKENS = ["<|vision_start|>", "<|image_pad|>", "<|vision_end|>"]
# At most this many image tokens (merged patches) per picture in the export. The traced tower attends with a
# dense patches x patches mask: at Qwen's own max_pixels (12.8 MP, 16k tokens, 65k patches) a phone photo would
# need terabytes of attention scores; 1024 tokens (about 900x900 px) keep a full-attention layer near 1 GB.
MAX_IMAGE_TOKENS = 1024
CHAT_MARKERS = ("<|im_start|>", "<|im_end|>")


def _pixels(image: dict) -> tuple[int, int]:
    size = image.get("size") or {}
    return int(image.get("min_pixels") or size.get("shortest_edge")), int(image.get("max_pixels") or size.get("longest_edge"))


def check(config: dict, image: dict, model_dir: Path) -> None:
    vision = config["vision_config"]
    if int(vision["window_size"]) < int(vision["patch_size"]) * int(vision["spatial_merge_size"]):
        raise EdgetuneError(f"{model_dir}'s vision tower has window_size {vision['window_size']}, less than one merged "
                            f"patch ({vision['patch_size']} x {vision['spatial_merge_size']} px): not a Qwen2.5-VL tower "
                            f"the ONNX pipeline can window.")
    missing = [k for k in ("patch_size", "merge_size", "temporal_patch_size") if k not in image]
    try:
        _pixels(image)
    except TypeError:
        missing.append("min_pixels/max_pixels (or size.shortest_edge/longest_edge)")
    if missing:
        raise EdgetuneError(f"{model_dir}'s image processor settings lack {', '.join(missing)}, which the ONNX Runtime "
                            f"GenAI Qwen image processor needs. Re-save the model with its Qwen2.5-VL processor.")
    require_tokens(model_dir, TOKENS, "ONNX Runtime GenAI's Qwen2.5-VL pipeline expands in every image prompt")


def processor_config(config: dict, image: dict) -> dict:
    low, high = _pixels(image)
    patch, merge, temporal = int(image["patch_size"]), int(image["merge_size"]), int(image["temporal_patch_size"])
    high = max(low, min(high, MAX_IMAGE_TOKENS * (patch * merge) ** 2))  # larger pictures are scaled down more
    side = int(round(high ** 0.5))  # width/height are not read with smart_resize on
    ops = [
        {"name": "decode_image", "type": "DecodeImage", "attrs": {"color_space": "RGB"}},
        {"name": "convert_to_rgb", "type": "ConvertRGB"},
        {"name": "resize", "type": "Resize", "attrs": {"width": side, "height": side, "smart_resize": 1, "min_pixels": low,
                                                       "max_pixels": high, "patch_size": patch, "merge_size": merge}},
        {"name": "rescale", "type": "Rescale", "attrs": {"rescale_factor": float(image.get("rescale_factor", 1 / 255))}},
        {"name": "normalize", "type": "Normalize",
         "attrs": {"mean": list(image["image_mean"]), "std": list(image["image_std"]), "qwen2_5_vl": 1}},
        {"name": "patch_image", "type": "PatchImage",
         "attrs": {"patch_size": patch, "temporal_patch_size": temporal, "merge_size": merge}},
    ]
    return {"processor": {"name": "qwen2_5_image_processor", "transforms": [{"operation": op} for op in ops]}}


def vision(model):
    """The tower + merger on one image's patches; traced on a 4x4 patch grid, valid for any grid."""
    import torch

    from exporters.onnx.vlm_qwen_vision import qwen_vision_graph

    visual = model.model.visual
    cfg = visual.config
    grid = torch.tensor([[1, 2 * cfg.spatial_merge_size, 2 * cfg.spatial_merge_size]])
    patches = torch.zeros(int(grid.prod()), cfg.in_channels * cfg.temporal_patch_size * cfg.patch_size ** 2)
    # image_grid_thw stays a static [1, 3]: the runtime then runs the graph once per image
    return (qwen_vision_graph(visual), {"pixel_values": patches, "image_grid_thw": grid},
            {"pixel_values": {0: "num_patches"}, "image_features": {0: "num_image_tokens"}})


def genai_extras(model, model_dir: Path) -> tuple[dict, dict]:
    from engine.models.loading import tokenizer_from_dir

    cfg, vision_cfg = model.config, model.config.vision_config
    vocab = tokenizer_from_dir(model_dir).get_vocab()
    pad = getattr(cfg.text_config, "pad_token_id", None)
    if pad is None:
        pad = getattr(cfg, "pad_token_id", None)
    if (pad is None or pad in {vocab.get(t) for t in CHAT_MARKERS}) and "<|endoftext|>" in vocab:
        pad = vocab["<|endoftext|>"]
    model_keys = {"video_token_id": cfg.video_token_id, "vision_start_token_id": cfg.vision_start_token_id}
    if pad is not None:
        model_keys["pad_token_id"] = int(pad)
    return model_keys, {"spatial_merge_size": vision_cfg.spatial_merge_size, "patch_size": vision_cfg.patch_size,
                        "window_size": vision_cfg.window_size, "tokens_per_second": float(vision_cfg.tokens_per_second)}


QWEN2_5_VL = register_vlm_pipeline(VlmPipeline(
    arch="Qwen2_5_VLForConditionalGeneration", families="Qwen2.5-VL 3B/7B/32B/72B", genai_type="qwen2_5_vl",
    check=check, processor_config=processor_config, vision=vision, genai_extras=genai_extras,
))
