"""Where trainable parameters go in a VLM: LoRA on the text decoder only, the vision side frozen.

peft's target names ('q_proj', 'all-linear') would also match the vision tower's layers, so for
a VLM the resolved targets become one regex over the decoder's module path.
"""

from __future__ import annotations

import re


def language_model_prefix(model) -> str | None:
    """Module path of a VLM's text decoder ('model.text_model'); None for a text-only model."""
    from engine.vision.families import family_of_model

    family = family_of_model(model)
    return family.language_model if family else None


def scoped_targets(chosen, available: list[str], prefix: str | None):
    """Targets limited to the decoder under `prefix` (unchanged for text models)."""
    if prefix is None:
        return chosen
    names = available if chosen == "all-linear" else list(chosen)
    return rf"^{re.escape(prefix)}\..*\.({'|'.join(re.escape(n) for n in names)})$"


def quantisation_skips(model_dir) -> list[str]:
    """Module names bitsandbytes must leave in 16-bit for a VLM (vision tower, projector, output head)."""
    from engine.vision import is_vlm_folder, read_config
    from engine.vision.families import family_for

    if not is_vlm_folder(model_dir):
        return []  # text models, and multimodal checkpoints of other families: transformers' own default
    family = family_for(read_config(model_dir))
    return list(family.vision_modules + family.projector_modules) + ["lm_head"]


def projector_to_save(model, cfg) -> list[str] | None:
    """peft modules_to_save for lora.train_projector=true (the projector trains in full, saved with the adapter)."""
    if not getattr(cfg.lora, "train_projector", False):
        return None
    from engine.errors import ConfigError
    from engine.vision.families import family_of_model

    family = family_of_model(model)
    if family is None:
        raise ConfigError("lora.train_projector=true is for vision-language models (it trains the connector between "
                          "the vision encoder and the LM); this model has none. Remove the option.")
    return [m.split(".")[-1] for m in family.projector_modules]
