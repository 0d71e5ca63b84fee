"""LyCORIS-style low-rank updates through peft: LoHa (Hadamard product of two low-rank pairs) and LoKr
(Kronecker product of a small factor and a low-rank block).

Both reach higher effective rank than LoRA for the same parameter count, both merge into the
weight, and neither runs on a quantised base (peft implements them for plain nn.Linear only).
llama.cpp's adapter format holds LoRA A/B pairs only, so they export by merging.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.train.methods import Export, Method, register_method
from engine.train.methods.lora import lora_target_modules

OPTIONS = ("lora.r", "lora.alpha", "lora.dropout", "lora.target_modules")


@dataclass(frozen=True)
class LohaMethod(Method):
    def attach(self, model, cfg, head):
        from peft import LoHaConfig, get_peft_model

        return get_peft_model(model, LoHaConfig(r=cfg.lora.r, alpha=cfg.lora.alpha, module_dropout=cfg.lora.dropout,
                                                target_modules=lora_target_modules(model, cfg)))

    def trainable(self, shape, cfg):
        # hada_w1_a (out x r), hada_w1_b (r x in), and the same again for w2
        return sum(2 * cfg.lora.r * (i + o) for _, i, o in shape.modules(cfg.lora.target_modules)) * shape.num_layers


def factorization(dimension: int) -> tuple[int, int]:
    """Two factors of `dimension` near its square root, smaller first (peft's lokr factorization, factor=-1)."""
    m, n = 1, dimension
    while m < n:
        new_m = m + 1
        while dimension % new_m:
            new_m += 1
        new_n = dimension // new_m
        if new_m + new_n > m + n:
            break
        m, n = new_m, new_n
    return (m, n) if m <= n else (n, m)


@dataclass(frozen=True)
class LokrMethod(Method):
    def attach(self, model, cfg, head):
        from peft import LoKrConfig, get_peft_model

        return get_peft_model(model, LoKrConfig(r=cfg.lora.r, alpha=cfg.lora.alpha, module_dropout=cfg.lora.dropout,
                                                target_modules=lora_target_modules(model, cfg)))

    def trainable(self, shape, cfg):
        r, total = cfg.lora.r, 0
        for _, i, o in shape.modules(cfg.lora.target_modules):
            in_m, in_n = factorization(i)
            out_l, out_k = factorization(o)
            total += out_l * in_m  # w1: the small Kronecker factor, full
            # w2: full when r is at least half its larger side, else a rank-r pair
            total += out_k * in_n if r >= max(out_k, in_n) / 2 else r * (out_k + in_n)
        return total * shape.num_layers


NOT_QUANTISED = "peft implements it for 16/32-bit linears only"
register_method(LohaMethod(
    "loha", "reparametrisation", "LoHa: the update is the Hadamard product of two low-rank pairs (higher rank, same size).",
    Export(merge=True), lr_factor=1.0, options=OPTIONS))
register_method(LokrMethod(
    "lokr", "reparametrisation", "LoKr: the update is a Kronecker product of a small factor and a low-rank block.",
    Export(merge=True), lr_factor=1.0, options=OPTIONS))
