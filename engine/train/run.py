"""The public entry point for training: a RunConfig in, a finished (or stopped) run folder out.

    from engine.train.run import run_training
    result, recipe = run_training(cfg, sink)          # what `engine train` does

`cfg.stage` picks the recipe from the registry (engine/train/recipes); every recipe keeps
the same run-folder contract, so callers never name a recipe class.
"""

from __future__ import annotations

from typing import Optional

from engine.events import EventSink


def make_recipe(cfg, sink: EventSink, progress: bool = False):
    """The recipe object for `cfg.stage` (not set up yet)."""
    from engine.train.recipes import get_recipe

    return get_recipe(cfg.stage)(cfg, sink, progress=progress)


def run_training(cfg, sink: EventSink, resume: Optional[str] = None, progress: bool = False):
    """Set up and train; returns (result dict, recipe). A config/data error before training is emitted as an
    `error` event (kind config) and re-raised; a failed run raises RunFailed after its events."""
    from engine.errors import EdgetuneError

    recipe = make_recipe(cfg, sink, progress)
    try:
        recipe.setup(resume)
    except EdgetuneError as e:
        sink.emit("error", kind="config", message=str(e), hint="fix the setting named above")
        raise
    return recipe.train(), recipe
