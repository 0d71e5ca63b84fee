"""VeRA through peft: one pair of frozen random low-rank matrices shared by every layer, and two
trained scaling vectors per adapted linear (lambda_d of size r, lambda_b of size out).

Orders of magnitude fewer trainable parameters than LoRA at the same rank; it merges. The
shared matrices are saved with the adapter (save_projection) so a reload is exact.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.train.methods import Export, Method, register_method
from engine.train.methods.lora import lora_target_modules

# VeRA's papers use ranks far above LoRA's: the matrices are frozen and shared, only vectors train.
VERA_RANK_FACTOR = 16


@dataclass(frozen=True)
class VeraMethod(Method):
    def rank(self, cfg) -> int:
        return cfg.lora.r * VERA_RANK_FACTOR

    def attach(self, model, cfg, head):
        from peft import VeraConfig, get_peft_model

        from engine.train.model_setup import HEADS

        return get_peft_model(model, VeraConfig(r=self.rank(cfg), target_modules=lora_target_modules(model, cfg),
                                                vera_dropout=cfg.lora.dropout, projection_prng_key=cfg.seed,
                                                save_projection=True, task_type=HEADS[head][1]))

    def trainable(self, shape, cfg):
        return sum(self.rank(cfg) + o for _, _, o in shape.modules(cfg.lora.target_modules)) * shape.num_layers


register_method(VeraMethod(
    "vera", "reparametrisation", f"VeRA: frozen random low-rank matrices shared by all layers (rank {VERA_RANK_FACTOR} x lora.r), "
    "only two scaling vectors per linear train.", Export(merge=True), lr_factor=10.0, base_formats=("none", "8bit", "4bit"),
    options=("lora.r", "lora.dropout", "lora.target_modules")))
