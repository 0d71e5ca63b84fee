"""Selective methods: train a chosen subset of the model's own weights (no new modules).

    full    every weight (fp32 master weights, autocast for speed)
    freeze  only the top train.freeze_layers decoder layers and the final norm
    bitfit  only the bias terms (BitFit), plus a new score head for reward models

They update the base itself, so the run saves a whole model (final/), which exports as is.
BitFit needs biases: Llama-like models (SmolLM2, Llama, Mistral) have none and are refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.train.methods import Export, Method, bias_params, register_method

WHOLE = Export(merge=True)  # nothing to merge: final/ is the model


@dataclass(frozen=True)
class FullMethod(Method):
    def attach(self, model, cfg, head):
        return model

    def trainable(self, shape, cfg):
        return shape.total_params - shape.extra_frozen_params


@dataclass(frozen=True)
class FreezeMethod(Method):
    def attach(self, model, cfg, head):
        from engine.train.model_setup import freeze_all_but_top, train_score_head

        freeze_all_but_top(model, cfg.train.freeze_layers)
        train_score_head(model, head)
        return model

    def trainable(self, shape, cfg):
        per_layer = shape.linear_params_per_layer + shape.norms_per_layer * shape.hidden_size + bias_params(shape)
        return min(cfg.train.freeze_layers, shape.num_layers) * per_layer + shape.hidden_size  # + the final norm


@dataclass(frozen=True)
class BitfitMethod(Method):
    def refusal(self, facts, cfg):
        if facts.bias_params == 0:
            return (f"BitFit trains only bias terms, and this {facts.model_type} model has no bias parameters. Use "
                    f"method=ia3 (the closest in size: per-channel scales) or method=lora.")
        return None

    def attach(self, model, cfg, head):
        from engine.errors import ConfigError
        from engine.train.model_setup import train_score_head

        n = 0
        for name, p in model.named_parameters():
            p.requires_grad_(name.endswith(".bias"))
            n += p.numel() if name.endswith(".bias") else 0
        if n == 0:
            raise ConfigError("method=bitfit found no bias parameters in this model; use method=ia3 or method=lora.")
        train_score_head(model, head)
        return model

    def trainable(self, shape, cfg):
        return bias_params(shape) * shape.num_layers


register_method(FullMethod(
    "full", "selective", "Full fine-tuning: every weight trains (fp32 master weights); the most memory.",
    WHOLE, lr_factor=0.05, trains_base=True, saved_as="full"))
register_method(FreezeMethod(
    "freeze", "selective", "Freeze tuning: only the top train.freeze_layers layers and the final norm train.",
    WHOLE, lr_factor=0.1, trains_base=True, saved_as="full", options=("train.freeze_layers",)))
register_method(BitfitMethod(
    "bitfit", "selective", "BitFit: only the bias terms train (models with biases, e.g. Qwen2, GPT-2).",
    WHOLE, lr_factor=2.0, trains_base=True, saved_as="full"))
