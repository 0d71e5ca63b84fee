"""Phi-3 / Phi-3.5 mini. Fused qkv_proj and gate_up_proj map straight onto llama.cpp's fused
tensors; the long-context ('longrope'/'su') variants carry per-frequency factors as tensors."""

from __future__ import annotations

import math

import gguf

from exporters.gguf.registry import Architecture, UnsupportedArchitecture, register_architecture


@register_architecture("Phi3ForCausalLM")
class Phi3Architecture(Architecture):
    gguf_arch = gguf.MODEL_ARCH.PHI3

    def check(self) -> None:
        self._check_rope_type({"default", "longrope", "su"})

    def rope_dimension_count(self) -> int:
        return int(float(self.rope().get("partial_rotary_factor", 1.0)) * self.hp("hidden_size")) // self.n_head

    @property
    def original_ctx(self) -> int:
        return int(self.rope().get("original_max_position_embeddings") or self.hp("original_max_position_embeddings")
                   or self.hp("max_position_embeddings"))

    def write_hparams(self, w) -> None:
        super().write_hparams(w)
        w.add_rope_scaling_orig_ctx_len(self.original_ctx)
        # llama.cpp tells Phi-4-style sliding models apart from Phi-3 by a zero window.
        w.add_sliding_window(int(self.hp("sliding_window", 0) or 0))
        rope = self.rope()
        if rope.get("long_factor"):
            scale = self.hp("max_position_embeddings") / self.original_ctx
            attn = math.sqrt(1 + math.log(scale) / math.log(self.original_ctx)) if scale > 1 else 1.0
            w.add_rope_scaling_attn_factors(attn)

    def extra_tensors(self):
        import numpy as np

        rope = self.rope()
        long, short = rope.get("long_factor"), rope.get("short_factor")
        if not long:
            return
        if not short or len(long) != len(short) or len(long) != self.rope_dimension_count() // 2:
            raise UnsupportedArchitecture(
                f"Phi-3 rope long/short factors must both have {self.rope_dimension_count() // 2} entries "
                f"(got {len(long)} and {len(short or [])}); config.json is inconsistent."
            )
        yield gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FACTORS_LONG] + ".weight", np.array(long, dtype=np.float32)
        yield gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FACTORS_SHORT] + ".weight", np.array(short, dtype=np.float32)
