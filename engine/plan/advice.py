"""What to change when a run does not fit, each change measured by re-planning.

Levers are a registry, tried in order of what they cost: first the ones that only cost
speed (checkpointing, a smaller micro-batch with more accumulation, an 8-bit optimizer,
checkpoints offloaded to CPU RAM, the Unsloth backend), then the ones that change what is trained (4-bit base, shorter
sequences). For a run that does not fit, levers are applied one after another until it
fits, and every applied lever is reported with the total it leads to; the lines are
`key=value` overrides the user can paste after the config file.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Callable, Optional

from engine.plan.estimate import estimate, total_gb
from engine.plan.gpu_catalog import Target
from engine.plan.run_spec import run_spec
from engine.train.methods import get_method, resolved_load_in
from engine.plan.shape import ModelShape


@dataclass(frozen=True)
class Lever:
    name: str
    costs_only_speed: bool  # False: the change alters what is trained (a 4-bit base, shorter sequences)
    # (config, plan context) -> a changed copy with the override text, or None when it does not apply
    apply: Callable[["RunConfig", "Context"], Optional[tuple[object, str]]]  # noqa: F821


@dataclass
class Context:
    target: Target
    shape: ModelShape
    batch_size: int
    gradient_checkpointing: bool

    def total(self, cfg) -> float:
        return total_gb(estimate(run_spec(cfg, self.target.device, self.shape, self.batch_size, self.gradient_checkpointing)))

    def fits(self, cfg) -> bool:
        return self.total(cfg) <= self.target.memory_gb


LEVERS: list[Lever] = []


def lever(name: str, costs_only_speed: bool = True):
    def deco(fn):
        LEVERS.append(Lever(name, costs_only_speed, fn))
        return fn

    return deco


def _copy(cfg):
    return copy.deepcopy(cfg)


@lever("gradient checkpointing")
def _checkpointing(cfg, ctx: Context):
    if ctx.gradient_checkpointing:
        return None
    ctx.gradient_checkpointing = True
    new = _copy(cfg)
    new.train.gradient_checkpointing = True
    return new, "train.gradient_checkpointing=true"


@lever("smaller micro-batch")
def _smaller_batch(cfg, ctx: Context):
    if ctx.batch_size <= 1:
        return None
    effective = ctx.batch_size * cfg.optim.grad_accum
    batch = ctx.batch_size
    while batch > 1:
        batch //= 2
        ctx_try = Context(ctx.target, ctx.shape, batch, ctx.gradient_checkpointing)
        if ctx_try.fits(cfg):
            break
    ctx.batch_size = batch
    new = _copy(cfg)
    new.optim.batch_size = batch
    new.optim.grad_accum = math.ceil(effective / batch)
    return new, f"batch_size={batch} grad_accum={new.optim.grad_accum} (same effective batch {effective})"


@lever("input embedding in host RAM")
def _host_embedding(cfg, ctx: Context):
    if cfg.train.offload_embedding is not False:
        return None
    trial = _copy(cfg)
    trial.train.offload_embedding = "auto"
    if not run_spec(trial, ctx.target.device, ctx.shape, 1, True).host_embedding:
        return None  # not on a GPU, a tied head, or a method that trains the table
    return trial, "train.offload_embedding=auto (the frozen token table stays in CPU RAM)"


@lever("8-bit optimizer")
def _optimizer(cfg, ctx: Context):
    if cfg.optim.optimizer != "adamw_torch":
        return None
    new = _copy(cfg)
    new.optim.optimizer = "paged_adamw_8bit"
    return new, "optim.optimizer=paged_adamw_8bit"


@lever("offloaded checkpoints")
def _offload(cfg, ctx: Context):
    if ctx.target.device != "cuda" or cfg.train.gradient_checkpointing == "offload":
        return None
    if run_spec(cfg, "cuda", ctx.shape, 1, True).backend != "hf":
        return None  # Unsloth's checkpointing offloads already
    ctx.gradient_checkpointing = True
    new = _copy(cfg)
    new.train.gradient_checkpointing = "offload"
    return new, "train.gradient_checkpointing=offload (layer inputs in CPU RAM; a little slower)"


@lever("unsloth backend")
def _unsloth(cfg, ctx: Context):
    if ctx.target.device != "cuda" or "unsloth" not in get_method(cfg.method).backends:
        return None
    if run_spec(cfg, "cuda", ctx.shape, 1, True).backend == "unsloth":
        return None
    new = _copy(cfg)
    new.train.backend = "unsloth"
    return new, "train.backend=unsloth (pip install 'edgetune[unsloth]')"


@lever("4-bit base", costs_only_speed=False)
def _qlora(cfg, ctx: Context):
    method = get_method(cfg.method)
    if "4bit" not in method.base_formats or resolved_load_in(cfg) != "none" or method.trains_base:
        return None
    new = _copy(cfg)
    if cfg.method == "lora":
        new.method = "qlora"
        new.quant.load_in = "auto"
        return new, "method=qlora"
    new.quant.load_in = "4bit"
    return new, "quant.load_in=4bit"


@lever("shorter sequences", costs_only_speed=False)
def _shorter(cfg, ctx: Context):
    length = cfg.sequence.max_len
    while length > 128:
        length = max(128, (length // 2) // 128 * 128 or 128)
        trial = _copy(cfg)
        trial.sequence.max_len = length
        if ctx.fits(trial):
            break
    if length == cfg.sequence.max_len:
        return None
    new = _copy(cfg)
    new.sequence.max_len = length
    return new, f"max_len={length} (longer records are truncated; check with `engine data inspect`)"


def _applied(cfg, ctx: Context, levers):
    """Apply `levers` one after another: (override text, planned total after it, config so far) per lever that applies."""
    current = cfg
    for lv in levers:
        changed = lv.apply(current, ctx)
        if changed is not None:
            current, text = changed
            yield text, ctx.total(current), current


def _headroom(cfg, target: Target, shape: ModelShape, plan) -> list[str]:
    """For a tight fit: the changes that cost only speed, applied in order until the run is no longer tight."""
    from engine.plan.planner import TIGHT_FROM

    ctx = Context(target, shape, plan.batch_size, plan.gradient_checkpointing)
    lines = []
    for text, total, _ in _applied(cfg, ctx, [lv for lv in LEVERS if lv.costs_only_speed and lv.name != "smaller micro-batch"]):
        lines.append(f"for headroom, set {text}: {total:.1f} GB")
        if total <= target.memory_gb * TIGHT_FROM:
            break
    return lines


def advise_changes(cfg, target: Target, shape: ModelShape, plan) -> list[str]:
    """Advice lines for `plan`: headroom when it fits, the changes that make it fit otherwise."""
    gb = target.memory_gb
    if plan.fits:
        lines = [f"fits with {gb - plan.total_gb:.1f} GB to spare of {gb:.1f} GB"]
        if plan.verdict == "tight":
            lines.append("tight: an allocation spike may run out of memory; `engine train` then halves the "
                         "micro-batch and doubles grad_accum")
            lines += _headroom(cfg, target, shape, plan)
        if plan.max_batch_size > plan.batch_size:
            effective = plan.batch_size * plan.grad_accum
            # the largest micro-batch that fits and divides the effective batch: same optimisation, fewer steps
            micro = max(d for d in range(1, min(plan.max_batch_size, effective) + 1) if effective % d == 0)
            line = f"largest micro-batch that fits: {plan.max_batch_size}"
            if micro > plan.batch_size:
                line += f"; for the same effective batch of {effective}: batch_size={micro} grad_accum={effective // micro}"
            lines.append(line)
        return lines
    ctx = Context(target, shape, plan.batch_size, plan.gradient_checkpointing)
    lines, current = [], cfg
    for text, total, current in _applied(cfg, ctx, LEVERS):
        lines.append(f"set {text}: {total:.1f} GB")
        if total <= gb:
            return [f"does not fit in {gb:.1f} GB; these changes, applied in order, make it fit:"] + lines
    return [f"does not fit in {gb:.1f} GB even with every change below ({ctx.total(current):.1f} GB); "
            f"use a smaller model or a bigger GPU:"] + lines
