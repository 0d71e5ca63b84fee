"""Training backends, as a registry: each file registers one with `@register_backend`.

A backend turns (config, model folder, device) into a trainable model and its
tokenizer. `choose_backend` resolves `train.backend: auto` and says why, so the
run's first event can tell the user which backend ran.
"""

from __future__ import annotations

from typing import Callable

from engine.errors import ConfigError

BACKENDS: dict[str, type] = {}


def register_backend(name: str) -> Callable[[type], type]:
    def deco(cls: type) -> type:
        cls.name = name
        BACKENDS[name] = cls
        return cls

    return deco


def _load_all() -> None:
    from engine.train.backends import hf, unsloth  # noqa: F401  (registration side effect)


def choose_backend(requested: str, device: str) -> tuple[str, str]:
    """(backend name, reason) for train.backend; 'auto' prefers unsloth on a GPU when it imports."""
    _load_all()
    if requested != "auto":
        if requested not in BACKENDS:
            raise ConfigError(f"train.backend={requested!r} is unknown; known backends: {', '.join(BACKENDS)}.")
        ok, why = BACKENDS[requested].available(device)
        if not ok:
            raise ConfigError(f"train.backend={requested} cannot run here: {why}. Use train.backend=hf (works everywhere).")
        return requested, "set in the config"
    ok, why = BACKENDS["unsloth"].available(device)
    if ok:
        return "unsloth", "auto: CUDA GPU present and unsloth imports"
    return "hf", f"auto: unsloth not used ({why})"


def get_backend(name: str):
    _load_all()
    return BACKENDS[name]()
