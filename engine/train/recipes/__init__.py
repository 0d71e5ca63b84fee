"""Training recipes, as a registry: one file per stage registers its recipe class.

    from engine.train.recipes import get_recipe
    recipe = get_recipe(cfg.stage)(cfg, sink)     # SftRecipe, DpoRecipe, ...
    recipe.setup(resume); recipe.train()

A recipe class says only what differs from the base recipe (engine/train/recipes/base.py,
which owns the run-folder contract): its TRL trainer and config, the data kinds it trains
on, the metrics its `step` events carry, and how its model head is built. Recipe modules
import nothing heavy at import time, so the registry can be listed without torch.
"""

from __future__ import annotations

import importlib
from typing import Callable

from engine.config.stages import STAGES
from engine.errors import ConfigError

RECIPES: dict[str, type] = {}
# stage name -> the module that registers it: engine/train/recipes/<stage>.py, one per stage the config offers
MODULES = {name: f"engine.train.recipes.{name}" for name in STAGES}


def register_recipe(name: str) -> Callable[[type], type]:
    """Class decorator: make a recipe available as `stage=<name>`."""

    def deco(cls: type) -> type:
        cls.stage = name
        RECIPES[name] = cls
        return cls

    return deco


def _load_all() -> None:
    for module in MODULES.values():
        importlib.import_module(module)


def recipe_names() -> list[str]:
    """Every registered stage name."""
    _load_all()
    return list(RECIPES)


def get_recipe(name: str) -> type:
    """The recipe class for `stage=name`; an unknown name lists the known ones."""
    _load_all()
    if name not in RECIPES:
        raise ConfigError(f"stage={name!r} is unknown; known stages: {', '.join(RECIPES)}.")
    return RECIPES[name]


def stages_for_kind(kind: str) -> list[str]:
    """Stages that can train on data of this kind ('chat', 'text', 'preference', 'kto')."""
    _load_all()
    return [name for name, cls in RECIPES.items() if kind in cls.data_kinds]
