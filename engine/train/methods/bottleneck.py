"""Bottleneck adapters (additive): small down-up MLPs inside every decoder layer.

    adapter_serial    Houlsby: after attention and after the FFN (two per layer), scale 1
    adapter_parallel  MAM / parallel adapter: beside the FFN (one per layer), scale 4 (He et al. 2022)

Non-linear modules cannot be folded into the base weights, and neither llama.cpp nor the ONNX
builder knows them: they are used through `engine chat`/`eval`/`serve`; train LoRA to export.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.train.methods import Export, Method, register_method

WEIGHTS, CONFIG = "bottleneck.safetensors", "edgetune_adapter.json"  # what adapter/ holds

NO_FOLD = Export(merge=False, label="non-linear module, not foldable", why_not="a bottleneck adapter is a new non-linear module (down, GELU, up), which cannot be "
                                      "folded into the existing weights, and GGUF/ONNX runtimes know only the base "
                                      "architecture. Chat/eval/serve the run itself, or train a LoRA-family method (method=lora/qlora) to export.")


@dataclass(frozen=True)
class BottleneckMethod(Method):
    placement: str = "serial"
    scale: float = 1.0

    def attach(self, model, cfg, head):
        from engine.train.methods.bottleneck_layers import attach_bottlenecks
        from engine.train.model_setup import train_score_head

        attach_bottlenecks(model, self.placement, cfg.adapter.size, self.scale)
        train_score_head(model, head)
        return model

    def activation_bytes(self, shape, cfg):
        # fp32 input copy (h), down output and GELU output (m each), per adapter
        return (shape.hidden_size + 2 * cfg.adapter.size) * 4 * (2 if self.placement == "serial" else 1)

    def trainable(self, shape, cfg):
        h, m = shape.hidden_size, cfg.adapter.size
        per_adapter = h * m + m + m * h + h
        return per_adapter * (2 if self.placement == "serial" else 1) * shape.num_layers


register_method(BottleneckMethod(
    "adapter_serial", "additive", "Serial bottleneck adapters (Houlsby): a down-up MLP after attention and after the FFN.",
    NO_FOLD, lr_factor=1.0, base_formats=("none", "8bit", "4bit"), saved_as="module", options=("adapter.size",),
    placement="serial", scale=1.0))
register_method(BottleneckMethod(
    "adapter_parallel", "additive", "Parallel bottleneck adapter (MAM): a down-up MLP beside each FFN, scaled by 4.",
    NO_FOLD, lr_factor=1.0, base_formats=("none", "8bit", "4bit"), saved_as="module", options=("adapter.size",),
    placement="parallel", scale=4.0))
