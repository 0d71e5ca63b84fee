"""Chat backends, a registry chosen from what the model reference is.

Each backend module registers a class with `matches(ref) -> bool` and the
ChatBackend methods: `prompt_ids(messages) -> list[int]` (the chat template
rendered and tokenised), `encode(text) -> list[int]` (plain text tokenised the
same way, for `engine serve`'s text completions) and `stream(ids, params) ->
iterator of text chunks` (stopping at the model's end-of-turn tokens; closing
it early ends the generation, and `last_count` holds the tokens generated).
A backend that reads images sets `accepts_images = True`, takes an `images` list of
paths on chat messages, and has `prompt_inputs(messages) -> (ids, inputs)`: the
pixel tensors come back with the ids, and `stream(ids, params, inputs)` uses them, so
requests served at once never mix up their images.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from engine.errors import EdgetuneError

BACKENDS: dict[str, type] = {}
ORDER: list[str] = []  # tried in this order (registration order) ...
FALLBACK = "hf"  # ... except this one, tried last: it matches anything resolve_model might understand


def register_backend(name: str):
    def deco(cls):
        cls.name = name
        BACKENDS[name] = cls
        ORDER.append(name)
        return cls

    return deco


def _load_all() -> None:
    from engine.chat.backends import gguf, hf, onnx  # noqa: F401  (registration)
    from engine.vision import chat_backend  # noqa: F401  (vision-language models: text + images)


def open_backend(ref: str, backend: str = "auto", **options):
    """Instantiate the backend for `ref` (or the one named)."""
    return backend_class(ref, backend)(ref, **options)


def backend_class(ref: str, backend: str = "auto") -> type:
    """The backend class `open_backend` would use for `ref`, decided from small files only (no loading):
    what `engine serve` reads, e.g. `accepts_images`, before a model is loaded."""
    _load_all()
    if backend != "auto":
        if backend not in BACKENDS:
            raise EdgetuneError(f"Unknown chat backend {backend!r}; known: {', '.join(BACKENDS)}.")
        return BACKENDS[backend]
    for name in sorted(ORDER, key=lambda n: n == FALLBACK):
        if BACKENDS[name].matches(ref):
            return BACKENDS[name]
    raise EdgetuneError(
        f"'{ref}' is not something edgetune can chat with: expected a run folder, an adapter folder, a model folder "
        f"(config.json), a .gguf file, an ONNX GenAI folder (genai_config.json), the bundled smollm2-135m-instruct "
        f"or a hub id."
    )


def require_memory(ref: str, need_gb: float, fix: str) -> None:
    """Refuse, before loading, a model that cannot fit in the RAM this machine has free: a clear
    error beats minutes of swapping or the kernel killing the process. `fix` says what to do."""
    from engine.plan.machine import cpu_memory_gb

    have = cpu_memory_gb()
    if have is not None and need_gb > have:
        raise EdgetuneError(f"'{ref}' needs about {need_gb:.2f} GB of memory to chat, but this machine has "
                            f"{have:.2f} GB available. {fix}")


def require_template(ref: str, template: Optional[str], where: str = " (a base model?)") -> None:
    """A model without a chat template (a base model) needs one named: say which, instead of guessing."""
    if template:
        return
    from engine.data.chat_templates import template_choices

    raise EdgetuneError(f"'{ref}' has no chat template{where}. Pass one with --template NAME "
                        f"({template_choices()}) or a Jinja file.")


def is_dir_with(ref: str, name: str) -> bool:
    return (Path(ref) / name).is_file()
