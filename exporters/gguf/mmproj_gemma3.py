"""Gemma 3's mmproj (`clip.projector_type=gemma3`), as llama.cpp's convert_hf_to_gguf.py writes it.

Its Gemma3VisionModel: the SigLIP keys every mmproj has, layer-norm eps (default 1e-6), GELU,
and `clip.vision.projector.scale_factor` (the average-pool kernel: patches per side / image
tokens per side) only when it is not llama.cpp's default of 4 (a 896 px, 256-token Gemma 3
uses 4; tiny test models do not). Tensors: the tower's SigLIP names, and the projector's
`mm_input_projection_weight` (a bare parameter, vision x text, stored as is: clip.cpp
transposes it) and `mm_soft_emb_norm.weight` + 1 (Gemma's RMSNorm scales by 1 + weight,
llama.cpp's by weight) as `mm.input_projection` / `mm.soft_emb_norm`. Names are mapped from
the loaded model's (families.py: module_name) to Google's, the ones gguf-py's table lists.
"""

from __future__ import annotations

from exporters.gguf.mmproj import SKIP, ProjectorLayout, register_projector

LLAMA_CPP_DEFAULT_POOL = 4


def pool_kernel(config: dict) -> int:
    """Patches per side over image tokens per side: the projector's average-pool kernel."""
    vision = config["vision_config"]
    per_side = int(int(config.get("mm_tokens_per_image", 256)) ** 0.5)
    return (int(vision["image_size"]) // int(vision["patch_size"])) // per_side


def _keys(writer, config: dict, pre: dict) -> None:
    writer.add_vision_use_gelu(True)
    kernel = pool_kernel(config)
    if kernel > 0 and kernel != LLAMA_CPP_DEFAULT_POOL:
        writer.add_vision_projector_scale_factor(kernel)


def _rename(key: str) -> str | None:
    """The loaded model's name ('model.vision_tower.encoder...') -> Google's, which gguf-py's table lists."""
    key = key.removeprefix("model.")
    if key.startswith("vision_tower.") and not key.startswith("vision_tower.vision_model."):
        key = "vision_tower.vision_model." + key[len("vision_tower."):]
    if "vision_model.head." in key:  # SigLIP's pooling head: Gemma 3 does not use it
        return None
    return key.replace("_weight", ".weight")


def _tensor_name(key: str, names, config: dict) -> str | None:
    renamed = _rename(key)
    return SKIP if renamed is None else names.get_name(renamed, try_suffixes=(".weight", ".bias"))


def _adjust(key: str, t):
    return t + 1.0 if key.endswith("soft_emb_norm.weight") else t


# Gemma3Processor writes "\n\n<start_of_image>" + soft tokens + "<end_of_image>\n\n"; libmtmd adds the two markers itself
register_projector("gemma3", ProjectorLayout(add_keys=_keys, tensor_name=_tensor_name, adjust=_adjust,
                                             image_text="\n\n{marker}\n\n"))
