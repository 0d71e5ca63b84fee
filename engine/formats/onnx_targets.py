"""Precisions and targets of the ONNX export, and which pairs ONNX Runtime GenAI builds.

A target is where the model will run: it picks the builder's execution provider and the
options that suit that hardware. The pairs below are the ones the model builder supports
(its own list: FP32 CPU, FP32 CUDA, FP16 CUDA, FP16 DML, INT8 CPU, INT8 CUDA, INT4 CPU,
INT4 CUDA, INT4 DML). Every target is *built* on any machine (the builder is plain Python);
CUDA and DirectML graphs are also verified here on the CPU execution provider, which
implements the same contrib ops.

    TARGETS["mobile"].builder_options  ->  {"accuracy_level": "4", ...}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from engine.errors import EdgetuneError


# Models below this many parameters get the slower, more accurate int4 recipe (see PRECISIONS):
# 4-bit hurts small models most, and k-quant's per-block search takes minutes here, not hours.
SMALL_MODEL_PARAMS = 1e9


@dataclass(frozen=True)
class Precision:
    """How the weights are stored, and the builder options that go with it."""

    name: str
    help: str
    bytes_per_param: float  # for the free-space check and the size estimate (int4: 4 bits + fp32 scales per 32)
    builder_options: dict[str, str] = field(default_factory=dict)
    small_model_options: dict[str, str] = field(default_factory=dict)  # extra, below SMALL_MODEL_PARAMS

    def options_for(self, params: int) -> dict[str, str]:
        """Builder --extra_options for a model of `params` parameters."""
        small = params and params < SMALL_MODEL_PARAMS
        return {**self.builder_options, **(self.small_model_options if small else {})}


PRECISIONS: dict[str, Precision] = {
    p.name: p for p in (
        # int4 keeps llama.cpp's Q4_K_M idea: the most quantisation-sensitive MatMuls (first and
        # last eighth of the layers, every third layer's qkv/down projections) stay 8-bit. On
        # SmolLM2-135M plain RTN int4 costs 0.84 nats/token of KL and rambles; mixed layers +
        # k-quant halve that (0.44) for +12% size, and greedy replies stop where fp32's do.
        Precision("int4", "4-bit weights (MatMulNBits, block 32), sensitive layers 8-bit; k-quant scales on models "
                          "under 1B parameters. Smallest: for phones and CPUs.", 0.75,
                  builder_options={"matmul_mixed_precision": "mixed_layers:int8"},
                  small_model_options={"algo_config": "k_quant"}),
        Precision("int8", "8-bit weights (MatMulNBits); twice int4's size, close to fp32 quality on small models.", 1.15),
        Precision("fp16", "16-bit float weights and activations; GPU targets (cuda, dml).", 2.0),
        Precision("fp32", "32-bit float; exact, largest, reference for CPU.", 4.0),
    )
}


@dataclass(frozen=True)
class Target:
    """Where the exported model runs."""

    name: str
    provider: str  # the builder's --execution_provider
    precisions: tuple[str, ...]
    help: str
    builder_options: dict[str, str] = field(default_factory=dict)
    # Cap on genai_config's search.max_length. onnxruntime-genai preallocates the whole KV cache
    # for max_length tokens (past_present_share_buffer), so a phone needs a smaller window than
    # the model's full context.
    max_length: Optional[int] = None
    # Precision options this provider cannot run (DirectML has no 8-bit MatMulNBits: the
    # builder lists no INT8 DML pair), dropped from the precision's recipe.
    drop_options: tuple[str, ...] = ()


TARGETS: dict[str, Target] = {}


def register_target(target: Target) -> Target:
    """Add a target to the registry (a new device is one new entry)."""
    TARGETS[target.name] = target
    return target


register_target(Target(
    "cpu", "cpu", ("int4", "int8", "fp32"),
    "Desktop/laptop CPU with onnxruntime-genai (x86-64 or ARM).",
))
register_target(Target(
    "mobile", "cpu", ("int4",),
    "Android/iOS phones: int4 for the CPU execution provider with accuracy level 4 (int8 activations, "
    "the fast path on ARM dot-product cores) and a 2048-token KV cache so it fits in phone memory.",
    builder_options={"accuracy_level": "4"},
    max_length=2048,
))
register_target(Target(
    "cuda", "cuda", ("int4", "int8", "fp16", "fp32"),
    "NVIDIA GPU with onnxruntime-genai-cuda.",
    # the builder otherwise folds Q/K RMSNorm (Gemma 3, Qwen3) into GroupQueryAttention, which only the CUDA and
    # WebGPU providers run: the export could not be verified on the CPU, where every export is checked
    builder_options={"fuse_qk_norm_gqa": "false"},
))
register_target(Target(
    "dml", "dml", ("int4", "fp16"),
    "Any DirectX 12 GPU on Windows with onnxruntime-genai-directml.",
    drop_options=("matmul_mixed_precision",),
))


def supported_pairs() -> str:
    """Human list of every supported precision/target pair, for error messages."""
    return "; ".join(f"{t.name}: {', '.join(t.precisions)}" for t in TARGETS.values())


def resolve_target(precision: str, target: Optional[str]) -> Target:
    """The target for `precision` (the first one that supports it when `target` is None).

    Raises EdgetuneError naming the supported pairs when the pair cannot be built.
    """
    if precision not in PRECISIONS:
        raise EdgetuneError(f"--precision {precision} is unknown; choose one of: {', '.join(PRECISIONS)}.")
    if target is None:
        return next(t for t in TARGETS.values() if precision in t.precisions)
    if target not in TARGETS:
        raise EdgetuneError(f"--target {target} is unknown; choose one of: {', '.join(TARGETS)}.")
    t = TARGETS[target]
    if precision not in t.precisions:
        others = [x.name for x in TARGETS.values() if precision in x.precisions]
        raise EdgetuneError(
            f"{precision} on --target {target} is not something ONNX Runtime GenAI builds "
            f"(on {target} use --precision {' or '.join(t.precisions)}; {precision} runs on --target {' or '.join(others)}). "
            f"Supported pairs: {supported_pairs()}."
        )
    return t


def folder_name(precision: str, target: Target) -> str:
    """onnx-<precision> for CPU, onnx-<precision>-<target> otherwise."""
    return f"onnx-{precision}" if target.name == "cpu" else f"onnx-{precision}-{target.name}"
