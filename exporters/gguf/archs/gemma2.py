"""Gemma 2 (text). Gemma's RMSNorm multiplies by (1 + weight); llama.cpp by weight, so +1.

Also: logit soft-capping in attention and at the output, alternating sliding-window
layers, and an attention scale llama.cpp derives from the head size (1/sqrt(head_dim),
or 1/sqrt(hidden/heads) for the 27B), which must agree with query_pre_attn_scalar.
"""

from __future__ import annotations

import gguf
import numpy as np

from exporters.gguf.registry import Architecture, UnsupportedArchitecture, register_architecture


def sliding_layers(config: dict, n_layers: int, every: int) -> list[bool]:
    """Which layers use the sliding window: from layer_types, else llama.cpp's default pattern."""
    types = config.get("layer_types")
    if types and len(types) == n_layers:
        return [t == "sliding_attention" for t in types]
    return [(i % every) < every - 1 for i in range(n_layers)]


class GemmaBase(Architecture):
    norm_shift_suffixes = ("norm.weight",)
    swa_every = 2

    def check(self) -> None:
        super().check()
        scalar = self.hp("query_pre_attn_scalar")
        candidates = {self.head_dim, self.hp("hidden_size") // self.n_head}
        if scalar is not None and int(scalar) not in candidates:
            raise UnsupportedArchitecture(
                f"{self.hf_name} has query_pre_attn_scalar={scalar}, but llama.cpp scales attention by "
                f"1/sqrt(head_dim={self.head_dim}); the exported model would compute different attention."
            )

    def skip(self, name: str) -> bool:
        return name == "lm_head.weight" or super().skip(name)  # Gemma always ties the output to the embedding

    def transform(self, name, tensor):
        if name.endswith(self.norm_shift_suffixes):
            tensor = tensor + np.float32(1.0)
        yield self.gguf_name(name), tensor

    def write_sliding_window(self, w) -> None:
        if self.hp("sliding_window"):
            w.add_sliding_window(int(self.hp("sliding_window")))
            w.add_key_value(gguf.Keys.Attention.SLIDING_WINDOW_PATTERN,
                            sliding_layers(self.config, self.n_layers, self.swa_every),
                            gguf.GGUFValueType.ARRAY, sub_type=gguf.GGUFValueType.BOOL)


@register_architecture("Gemma2ForCausalLM")
class Gemma2Architecture(GemmaBase):
    gguf_arch = gguf.MODEL_ARCH.GEMMA2

    def write_hparams(self, w) -> None:
        super().write_hparams(w)
        if self.hp("attn_logit_softcapping"):
            w.add_attn_logit_softcapping(float(self.hp("attn_logit_softcapping")))
        if self.hp("final_logit_softcapping"):
            w.add_final_logit_softcapping(float(self.hp("final_logit_softcapping")))
        self.write_sliding_window(w)
