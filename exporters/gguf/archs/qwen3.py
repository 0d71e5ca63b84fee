"""Qwen3 (dense). Like Qwen2 without q/k/v biases, plus per-head RMS norms on q and k."""

from __future__ import annotations

import gguf

from exporters.gguf.registry import Architecture, register_architecture


@register_architecture("Qwen3ForCausalLM")
class Qwen3Architecture(Architecture):
    gguf_arch = gguf.MODEL_ARCH.QWEN3
