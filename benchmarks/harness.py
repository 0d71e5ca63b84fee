"""What the side-by-side benchmarks share: one child process per measured variant, edgetune's recipe with
a timing hook, the CPU's name.

    result = run_child(__file__, "plain", "--steps", "4")      # parent: runs `script --child plain ...`
    report({"tokens_per_s": ...})                              # child: adds its peak RSS, prints RESULT
    train_with_hook(cfg, lambda trainer, build_s: trainer.add_callback(timer))

Each variant runs in its own process, so its peak RSS is its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_child(script: str, variant: str, *args: str) -> dict:
    """Run `script --child VARIANT ARGS` and return the dict its RESULT line carries."""
    out = subprocess.run([sys.executable, script, "--child", variant, *args], capture_output=True, text=True, cwd=REPO)
    line = next((l for l in out.stdout.splitlines() if l.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"{variant} failed:\n{out.stderr[-3000:]}")
    return json.loads(line[7:])


def report(result: dict) -> None:
    """In a child: add the process's peak RSS and print the RESULT line run_child reads."""
    from engine.process_memory import peak_rss_bytes

    result["peak_rss_gb"] = peak_rss_bytes() / 1e9
    print("RESULT " + json.dumps(result), flush=True)


def train_with_hook(cfg, on_trainer) -> None:
    """Train `cfg` through edgetune's public recipe, calling `on_trainer(trainer, build_s)` on every trainer it
    builds (where a benchmark adds its timing callback); build_s is the construction time (DPO's precomputed
    reference pass runs in it)."""
    from engine.events import EventSink
    from engine.train.run import make_recipe

    recipe = make_recipe(cfg, EventSink())
    recipe.setup(None)
    make_trainer = recipe._trainer

    def hooked(*args, **kwargs):
        t0 = time.perf_counter()
        trainer = make_trainer(*args, **kwargs)
        on_trainer(trainer, time.perf_counter() - t0)
        return trainer

    recipe._trainer = hooked
    recipe.train()


def StepTimer():
    """A Trainer callback timing each optimizer step (on_step_begin -> on_step_end), the same for every variant."""
    from transformers import TrainerCallback

    class _StepTimer(TrainerCallback):
        def __init__(self):
            self.times = []

        def on_step_begin(self, args, state, control, **kw):
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            self.times.append(time.perf_counter() - self.t0)

    return _StepTimer()


def cpu_name() -> str:
    try:
        return next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        return "unknown CPU"
