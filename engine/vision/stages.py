"""Which training stages take a vision-language model: a recipe says so (`trains_vlms = True`), the rest
refuse a VLM before loading it, naming the stages that do.

sft trains on image + text conversations (engine/vision/encode.py), dpo on image + text preference
pairs (engine/vision/pairs.py). kto, orpo, simpo, rm, grpo and rloo read text-only data and build
text-only heads, so a VLM given to them would lose its images or fail deep inside transformers.
"""

from __future__ import annotations

from engine.errors import ConfigError


def vlm_stages() -> list[str]:
    """Stage names whose recipe trains vision-language models."""
    from engine.train.recipes import RECIPES, recipe_names

    return [name for name in recipe_names() if getattr(RECIPES[name], "trains_vlms", False)]


def check_stage_takes_vlm(stage: str, recipe_cls, model: str) -> None:
    """ConfigError when `recipe_cls` (stage=`stage`) cannot train the vision-language model `model`."""
    if getattr(recipe_cls, "trains_vlms", False):
        return
    fits = vlm_stages()
    raise ConfigError(f"stage={stage} does not train vision-language models; model '{model}' is one. Stages that do: "
                      f"{', '.join(fits)} (image + text conversations: stage=sft; image + text preference pairs: "
                      f"stage=dpo). Use one of them, or a text-only model for stage={stage}.")
