"""Vision-language models (LLaVA-style: a vision encoder + a projector feeding a text LM).

    engine train model=runs/tiny-vlm data=shapes/train.jsonl      # the SFT recipe, LoRA on the LM
    engine chat runs/shapes --image shapes/held_out/0.png -m "What colour is the shape?"

The families the engine knows are a registry (families.py); the rest of this package is the
data layouts (data.py), rendering + masking with the model's processor (encode.py, collate.py),
where LoRA sits (modules.py; tower_lora.py for lora.vision_tower), merge (merge.py) and the chat
backend (chat_backend.py); preference pairs with images for stage=dpo (pairs.py) and which stages
take a VLM (stages.py). Nothing here is imported unless the model or the data has images.
"""

from __future__ import annotations

import json
from pathlib import Path


def read_config(folder: str | Path) -> dict:
    path = Path(folder) / "config.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def is_vlm_folder(folder: str | Path) -> bool:
    """Whether the folder holds a vision-language model of a family this package trains (families.py).

    Other multimodal checkpoints (a PaliGemma, ...) keep the text path they had: trained, merged
    and exported as their language model, as before this package existed. A text-only Gemma 3
    (gemma3_text) has no vision_config; a Gemma 3 with its vision tower (gemma3) is a VLM here."""
    from engine.vision.families import FAMILIES

    config = read_config(folder)
    return "vision_config" in config and config.get("model_type") in FAMILIES
