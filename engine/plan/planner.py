"""The planner's public API: a memory plan for a run config, and the 'auto' values it resolves.

    from engine.plan import plan_memory, resolve_auto
    plan = plan_memory(cfg, "cuda", 8.0)           # MemoryPlan: total_gb, breakdown, fits, advice, ...
    batch_size, grad_ckpt = resolve_auto(cfg, "cpu", None)

`engine train` calls `resolve_auto` (or `plan_memory`, whose batch_size and
gradient_checkpointing are the resolved values) before loading the model, and reports the
plan in its first events. Both are pure arithmetic on the model's shape; nothing here
imports torch.

How 'auto' is resolved (the run must fit in AUTO_HEADROOM of the memory, leaving room for
the estimate's error and for allocation spikes):
  optim.batch_size: auto          the largest micro-batch up to MAX_AUTO_BATCH that fits
  train.gradient_checkpointing: auto
                                  off when the run fits without it (it costs ~30% more
                                  compute); with both auto, off as long as the micro-batch
                                  that fits without it holds TARGET_TOKENS tokens (or reaches
                                  MAX_AUTO_BATCH); below that, on, when it lets a larger
                                  micro-batch fit.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable, Optional

from engine.plan.estimate import Part, estimate, total_gb
from engine.plan.gpu_catalog import Target
from engine.plan.machine import detect_target
from engine.plan.model_lookup import find_shape
from engine.plan.run_spec import RunSpec, run_spec
from engine.plan.shape import ModelShape

AUTO_HEADROOM = 0.90  # 'auto' choices must fit in 90% of the memory
TIGHT_FROM = 0.90  # above 90% of the memory a run "fits, tight": spikes may hit OOM recovery
MAX_AUTO_BATCH = 16  # larger micro-batches rarely train faster on one consumer device
TARGET_TOKENS = 4096  # tokens per micro-batch that keep a GPU busy; below it checkpointing pays


@dataclass
class MemoryPlan:
    """Peak memory of one run and whether it fits. GB = 2**30 bytes.

    total_gb: the planned peak; breakdown: named parts in GB (they sum to total_gb);
    fits: total_gb <= memory_gb; batch_size / gradient_checkpointing: the values the run
    uses ('auto' resolved); advice: what to change (or what headroom is left), one line each.
    """

    total_gb: float
    breakdown: dict[str, float]
    fits: bool
    batch_size: int
    gradient_checkpointing: bool
    advice: list[str]
    verdict: str = ""  # "fits" | "tight" | "does not fit"
    memory_gb: float = 0.0
    device: str = "cuda"
    target: str = ""
    model: str = ""
    model_source: str = ""
    total_params: int = 0
    trainable_params: int = 0
    method: str = ""
    stage: str = "sft"
    backend: str = ""
    compute_dtype: str = ""
    max_len: int = 0
    grad_accum: int = 1
    max_batch_size: int = 0  # largest micro-batch that fits (same max_len and checkpointing); 0 = none
    max_len_that_fits: int = 0  # longest multiple of 128 that fits at batch 1 with checkpointing
    notes: dict[str, str] = field(default_factory=dict)
    # a VLM: encoder_params, projector_params, language_params, tokens_per_image, crops_per_image, images_per_record
    vision: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Plain data for --json and the desktop app."""
        return asdict(self)


# --- core, on a resolved shape and target -------------------------------------------------

def _fits(parts: list[Part], memory_gb: float, headroom: float = AUTO_HEADROOM) -> bool:
    return total_gb(parts) <= memory_gb * headroom


def _largest(ok: Callable[[int], bool], hi: int, lo: int = 1) -> int:
    """Largest n in [lo, hi] with ok(n), assuming ok is monotone (more never fits better); 0 if none."""
    if not ok(lo):
        return 0
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _choose(cfg, target: Target, shape: ModelShape) -> tuple[int, bool]:
    """Resolve batch_size / gradient_checkpointing 'auto' against the memory of `target`."""
    fixed_batch = None if cfg.optim.batch_size == "auto" else int(cfg.optim.batch_size)
    fixed_ckpt = None if cfg.train.gradient_checkpointing == "auto" else bool(cfg.train.gradient_checkpointing)

    def fits(batch: int, ckpt: bool) -> bool:
        return _fits(estimate(run_spec(cfg, target.device, shape, batch, ckpt)), target.memory_gb)

    def largest(ckpt: bool) -> int:
        return _largest(lambda b: fits(b, ckpt), MAX_AUTO_BATCH)

    if fixed_batch is not None:
        if fixed_ckpt is not None:
            return fixed_batch, fixed_ckpt
        return fixed_batch, not fits(fixed_batch, False)
    if fixed_ckpt is not None:
        return max(1, largest(fixed_ckpt)), fixed_ckpt
    without, with_ = largest(False), largest(True)
    enough = min(MAX_AUTO_BATCH, math.ceil(TARGET_TOKENS / cfg.sequence.max_len))
    if without >= enough or (without > 0 and without >= with_):
        return without, False
    return max(1, with_), True


def _verdict(total: float, memory: float) -> str:
    if total > memory:
        return "does not fit"
    return "tight" if total > memory * TIGHT_FROM else "fits"


def build_plan(cfg, target: Target, shape: Optional[ModelShape] = None, advise: bool = True) -> MemoryPlan:
    """The full plan for `cfg` on `target` ('auto' values resolved first)."""
    from engine.plan.advice import advise_changes

    shape = shape or find_shape(cfg.model.name_or_path, cfg.model.trust_remote_code)
    batch, ckpt = _choose(cfg, target, shape)
    spec = run_spec(cfg, target.device, shape, batch, ckpt)
    parts = estimate(spec)
    total = total_gb(parts)
    plan = MemoryPlan(
        total_gb=round(total, 3), breakdown={p.name: round(p.gb, 3) for p in parts},
        fits=total <= target.memory_gb, batch_size=batch, gradient_checkpointing=ckpt, advice=[],
        verdict=_verdict(total, target.memory_gb), memory_gb=target.memory_gb, device=target.device,
        target=target.name, model=shape.name, model_source=shape.source, total_params=shape.total_params,
        trainable_params=_trainable(spec), method=cfg.method, stage=spec.stage, backend=spec.backend,
        compute_dtype={2: "16-bit", 4: "fp32"}[spec.compute_bytes], max_len=spec.max_len,
        grad_accum=cfg.optim.grad_accum, notes={p.name: p.note for p in parts},
        max_batch_size=_largest(lambda b: _fits(estimate(spec.with_(batch_size=b)), target.memory_gb, 1.0), 256),
        max_len_that_fits=128 * _largest(
            lambda n: _fits(estimate(spec.with_(batch_size=1, gradient_checkpointing=True, max_len=128 * n)),
                            target.memory_gb, 1.0), 1024),
    )
    if shape.vision is not None:
        v = shape.vision
        plan.vision = {"encoder_params": v.encoder_params, "projector_params": v.projector_params,
                       "language_params": shape.language_params, "tokens_per_image": v.tokens_per_image,
                       "crops_per_image": v.crops_per_image, "images_per_record": spec.images,
                       "trains": [n for n, on in (("encoder LoRA", spec.vision_lora), ("projector", spec.projector_trains)) if on]}
    if advise:
        plan.advice = advise_changes(cfg, target, shape, plan)
        plan.advice[:0] = vision_advice(shape, spec)
    return plan


def vision_advice(shape: ModelShape, spec: RunSpec) -> list[str]:
    """A VLM whose image tokens alone fill max_len: training would drop every record with images."""
    if shape.vision is None or not spec.images:
        return []
    need = spec.images * shape.vision.tokens_per_image
    if need < spec.max_len:
        return []
    return [f"max_len {spec.max_len} leaves no room for text after {need} image tokens per record "
            f"({spec.images} x {shape.vision.tokens_per_image}): training drops such records; raise sequence.max_len "
            f"well above {need}"]


def _trainable(spec: RunSpec) -> int:
    from engine.plan.estimate import trainable_params

    return trainable_params(spec)


def _target(device: str, memory_gb: Optional[float]) -> Target:
    if memory_gb is None:
        return detect_target(device)
    return Target(device, f"{device} with {memory_gb:g} GB", float(memory_gb))


# --- public API ---------------------------------------------------------------------------

def plan_memory(cfg, device: str = "cuda", memory_gb: Optional[float] = None) -> MemoryPlan:
    """Plan the peak memory of `cfg` on `device` ("cuda", "cpu" or "mps").

    memory_gb is the memory the run may use, in GB of 2**30 bytes (`total_memory / 2**30`);
    None asks the machine (torch if already imported, else nvidia-smi; for "cpu" the available
    RAM). 'auto' batch size and gradient checkpointing are resolved as `resolve_auto` does and
    the plan describes the resolved run. Raises ModelSourceError for a model whose shape the
    planner cannot find offline.
    """
    return build_plan(cfg, _target(device, memory_gb))


def resolve_auto(cfg, device: str = "cuda", memory_gb: Optional[float] = None) -> tuple[int, bool]:
    """(micro-batch size, gradient checkpointing) for the run; non-'auto' values pass through."""
    if cfg.optim.batch_size != "auto" and cfg.train.gradient_checkpointing != "auto":
        return int(cfg.optim.batch_size), bool(cfg.train.gradient_checkpointing)
    target = _target(device, memory_gb)
    return _choose(cfg, target, find_shape(cfg.model.name_or_path, cfg.model.trust_remote_code))
