"""A VLM's vision side as the planner sees it: encoder and projector sizes, and what one image costs.

    vision = vision_shape(config, text_hidden=576, processor=processor_settings(folder))
    vision.encoder_params, vision.projector_params      # SigLIP-B/16 + pixel-shuffle projector
    vision.tokens_per_image, vision.patches_per_image   # the LM's image tokens, the encoder's tokens

Read from config.json's `vision_config` (a SigLIP-style ViT: the Idefics3/SmolVLM family) and,
for a local folder, the processor's JSON (image splitting: a large image becomes up to
(size / max_image_size)^2 crops plus a global one, each its own pass through the encoder and
its own image tokens). A catalog entry without processor files plans one crop per image. No torch.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class VisionShape:
    """The vision encoder (a ViT) and projector of a VLM, and the crops and tokens one image becomes."""

    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    patch_size: int
    image_size: int  # pixels per side of one crop the encoder sees
    scale_factor: int  # pixel shuffle: scale^2 patches become one image token
    text_hidden: int
    crops_per_image: int = 1  # image splitting: the crops of the largest image, plus the global view

    @property
    def patches_per_crop(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    @property
    def patches_per_image(self) -> int:
        """Tokens the vision encoder runs on for one image (all its crops)."""
        return self.patches_per_crop * self.crops_per_image

    @property
    def tokens_per_image(self) -> int:
        """Image tokens one image adds to the LM's sequence (they count towards sequence.max_len)."""
        return self.patches_per_crop // self.scale_factor**2 * self.crops_per_image

    @property
    def linears_per_layer(self) -> list[tuple[str, int, int]]:
        """(name, in, out) of one encoder layer's linears: what vision-tower LoRA adapts."""
        h, i = self.hidden_size, self.intermediate_size
        return [("q_proj", h, h), ("k_proj", h, h), ("v_proj", h, h), ("out_proj", h, h), ("fc1", h, i), ("fc2", i, h)]

    @property
    def encoder_params(self) -> int:
        """Patch embedding (conv + bias), position embeddings, the layers (linears with biases, two LayerNorms)
        and the final LayerNorm: exactly the module's count for Idefics3 (a test checks it)."""
        h, i, p = self.hidden_size, self.intermediate_size, self.patch_size
        per_layer = 4 * (h * h + h) + (h * i + i) + (i * h + h) + 2 * 2 * h
        embeddings = 3 * p * p * h + h + self.patches_per_crop * h
        return self.num_layers * per_layer + embeddings + 2 * h

    @property
    def projector_params(self) -> int:
        """Idefics3's connector: one bias-free linear from the pixel-shuffled patches (h * scale^2) to the LM."""
        return self.hidden_size * self.scale_factor**2 * self.text_hidden

    @property
    def total_params(self) -> int:
        return self.encoder_params + self.projector_params


def processor_settings(folder: str | Path) -> dict:
    """The image processor's settings of a model folder (preprocessor_config.json, or processor_config.json's
    `image_processor`), {} when it has none."""
    folder = Path(folder)
    out = {}
    for name in ("preprocessor_config.json", "processor_config.json"):
        try:
            data = json.loads((folder / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict):
            out.update(data.get("image_processor") if isinstance(data.get("image_processor"), dict) else data)
    return out


def crops_per_image(settings: dict, image_size: int) -> int:
    """The most crops one image becomes: with image splitting, the largest image (resized to `size`'s longest edge)
    cut into tiles of `max_image_size`, plus the downscaled global view; otherwise one."""
    if not settings.get("do_image_splitting"):
        return 1
    longest = int((settings.get("size") or {}).get("longest_edge", image_size))
    tile = int((settings.get("max_image_size") or {}).get("longest_edge", image_size))
    per_side = max(1, math.ceil(longest / max(tile, 1)))
    return per_side * per_side + 1 if per_side > 1 else 1


def dynamic_resolution_shape(v: dict, text_hidden: int, processor: dict) -> VisionShape:
    """Qwen2-VL / Qwen2.5-VL: an image is resized to at most `max_pixels` (the processor's size.longest_edge, a pixel
    count), cut into patch_size² patches, and each spatial_merge_size² group becomes one image token. Planned at
    max_pixels: an upper bound, exact for images at least that large (set max_pixels in the processor to cap it)."""
    h = int(v.get("embed_dim") or v["hidden_size"])  # Qwen2-VL: embed_dim is the tower, hidden_size the LM's width
    size = processor.get("size") or {}
    max_pixels = int(processor.get("max_pixels") or size.get("longest_edge") or 12845056)
    patch, merge = int(v.get("patch_size", 14)), int(v.get("spatial_merge_size", 2))
    side = max(patch * merge, math.isqrt(max_pixels) // (patch * merge) * (patch * merge))
    return VisionShape(
        hidden_size=h, intermediate_size=int(v.get("intermediate_size") or h * float(v.get("mlp_ratio", 4))),
        num_layers=int(v.get("depth", v.get("num_hidden_layers", 0))), num_heads=int(v.get("num_heads", max(1, h // 64))),
        patch_size=patch, image_size=side, scale_factor=merge, text_hidden=int(text_hidden), crops_per_image=1)


def vision_shape(config: dict, text_hidden: int, processor: dict | None = None) -> VisionShape | None:
    """The VisionShape of a config.json with a ViT `vision_config`; None when it has none."""
    v = config.get("vision_config")
    if isinstance(v, dict) and v.get("spatial_merge_size"):
        return dynamic_resolution_shape(v, text_hidden, processor or {})
    if not isinstance(v, dict) or not v.get("hidden_size"):
        return None
    h = int(v["hidden_size"])
    image_size = int(v.get("image_size", 224))
    return VisionShape(
        hidden_size=h, intermediate_size=int(v.get("intermediate_size", 4 * h)), num_layers=int(v.get("num_hidden_layers", 0)),
        num_heads=int(v.get("num_attention_heads", max(1, h // 64))), patch_size=int(v.get("patch_size", 14)),
        image_size=image_size, scale_factor=int(config.get("scale_factor", 1)), text_hidden=int(text_hidden),
        crops_per_image=crops_per_image(processor or {}, image_size))
