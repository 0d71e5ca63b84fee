"""lora.vision_tower=true: LoRA on the vision encoder's linears as well as the text decoder's.

The encoder's layers have their own names (SigLIP: q_proj, k_proj, v_proj, out_proj, fc1, fc2), so
lora.target_modules is read on each side: 'all-linear' is every linear of the encoder, 'attention'
its attention projections, an explicit list the names of it the encoder has. The projector stays
as lora.train_projector says; the patch embedding (a convolution) stays frozen. The adapted encoder
is merged like the decoder (engine/vision/merge.py) and so reaches the mmproj GGUF.
"""

from __future__ import annotations

import re

from engine.errors import ConfigError

ATTENTION_NAMES = ("q_proj", "k_proj", "v_proj", "out_proj", "o_proj", "qkv", "proj")


def tower_targets(model, cfg, decoder_targets):
    """`decoder_targets` (engine/train/model_setup.resolve_targets' regex) widened to the vision encoder."""
    from engine.train.model_setup import linear_layer_names
    from engine.vision.families import family_of_model

    family = family_of_model(model)
    if family is None:
        raise ConfigError("lora.vision_tower=true is for vision-language models (it adapts the vision encoder); this "
                          "model has none. Remove the option.")
    available = sorted({n for prefix in family.vision_modules for n in linear_layer_names(model, prefix)})
    target = cfg.lora.target_modules
    if target == "all-linear":
        names = available
    elif target == "attention":
        names = [n for n in available if n in ATTENTION_NAMES]
    else:
        names = [n for n in ([target] if isinstance(target, str) else target) if n in available]
    if not names:
        raise ConfigError(f"lora.vision_tower=true: lora.target_modules={target!r} matches no linear layer of the vision "
                          f"encoder, whose linears are: {', '.join(available)}. Use 'all-linear', or add some of them.")
    prefixes = "|".join(re.escape(p) for p in family.vision_modules)
    tower = rf"^({prefixes})\..*\.({'|'.join(re.escape(n) for n in names)})$"
    return f"(?:{decoder_targets})|(?:{tower})"
