"""Training backends, as a registry: each file registers one with `@register_backend`.

A backend turns (config, model folder, device) into a trainable model and its
tokenizer. `choose_backend` resolves `train.backend: auto` and says why, so the
run's first event can tell the user which backend ran.
"""

from __future__ import annotations

from typing import Callable

from engine.errors import ConfigError

BACKENDS: dict[str, type] = {}
KNOWN = ("hf", "unsloth")  # the backend files, by name (importable without loading them)


def register_backend(name: str) -> Callable[[type], type]:
    def deco(cls: type) -> type:
        cls.name = name
        BACKENDS[name] = cls
        return cls

    return deco


def _load_all() -> None:
    from engine.train.backends import hf, unsloth  # noqa: F401  (registration side effect)


def installed_probe(name: str, device: str) -> tuple[bool, str]:
    """Whether backend `name` can run on `device`, by importing it (what the trainer asks)."""
    _load_all()
    return BACKENDS[name].available(device)


def choose_backend(requested: str, device: str, method: str = "lora",
                   probe: Callable[[str, str], tuple[bool, str]] = installed_probe) -> tuple[str, str]:
    """(backend name, reason) for train.backend; 'auto' prefers unsloth on a GPU when the method runs there
    and unsloth is usable. The planner calls this too, with a probe that does not import torch."""
    from engine.train.methods import get_method

    supported = get_method(method).backends
    if requested != "auto":
        if requested not in KNOWN:
            raise ConfigError(f"train.backend={requested!r} is unknown; known backends: {', '.join(KNOWN)}.")
        if requested not in supported:
            raise ConfigError(f"method={method} does not run on train.backend={requested} (it runs on "
                              f"{', '.join(supported)}); use train.backend=hf.")
        ok, why = probe(requested, device)
        if not ok:
            raise ConfigError(f"train.backend={requested} cannot run here: {why}. Use train.backend=hf (works everywhere).")
        return requested, "set in the config"
    if "unsloth" not in supported:
        return "hf", f"auto: method={method} runs on hf"
    ok, why = probe("unsloth", device)
    if ok:
        return "unsloth", "auto: CUDA GPU present and unsloth imports"
    return "hf", f"auto: unsloth not used ({why})"


def get_backend(name: str):
    _load_all()
    return BACKENDS[name]()
