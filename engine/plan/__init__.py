"""The memory planner: "will it fit?" for a run config, and the 'auto' values it resolves.

    from engine.plan import plan_memory, resolve_auto
    plan = plan_memory(cfg, "cuda", 8.0)     # MemoryPlan(total_gb, breakdown, fits, batch_size,
                                             #            gradient_checkpointing, advice, ...)
    batch_size, grad_ckpt = resolve_auto(cfg, "cpu", None)

Never imports torch. Files, read top to bottom:
  shape.py          ModelShape from a config.json dict; per-family linear layouts
  model_catalog.py  shapes of popular models (offline)     model_lookup.py  where a shape comes from
  gpu_catalog.py    GPU names -> memory, Apple, "CPU 32GB"  machine.py       this machine's memory
  run_spec.py       RunConfig + device -> the numbers the estimate needs
  estimate.py       the peak as named parts, each with where its numbers come from
  planner.py        MemoryPlan, plan_memory, resolve_auto   advice.py        what to change
  cpu_heap.py       the allocator setting CPU training needs for the CPU figures to hold
  report.py         the text `engine plan` prints
"""

from engine.plan.cpu_heap import pin_malloc_threshold
from engine.plan.gpu_catalog import Target, parse_target
from engine.plan.planner import MemoryPlan, build_plan, plan_memory, resolve_auto

__all__ = ["MemoryPlan", "Target", "build_plan", "parse_target", "pin_malloc_threshold", "plan_memory", "resolve_auto"]
