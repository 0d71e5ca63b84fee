"""Qwen2 / Qwen2.5 (dense). Biases on q/k/v; rotary halves like HF (NEOX style), so no reordering."""

from __future__ import annotations

import gguf

from exporters.gguf.registry import Architecture, UnsupportedArchitecture, register_architecture


@register_architecture("Qwen2ForCausalLM")
class Qwen2Architecture(Architecture):
    gguf_arch = gguf.MODEL_ARCH.QWEN2

    def check(self) -> None:
        super().check()
        if self.config.get("use_sliding_window"):
            # HF Qwen2 can slide on the upper layers; llama.cpp's qwen2 graph always attends fully.
            raise UnsupportedArchitecture(
                f"{self.hf_name} with use_sliding_window=true has no llama.cpp equivalent; set "
                f"use_sliding_window=false in config.json if the model was trained without it."
            )
