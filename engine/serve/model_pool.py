"""The models one server offers: names fixed at start, each loaded when first asked for.

A request names a model only by the name `/v1/models` lists; the name is looked up in
this table and never used as a path, so a client cannot make the server open a file.
Loading goes through `ChatSession` (engine/chat), with the memory pre-check it already
has: a model that would not fit in the RAM still free is refused with the fix, and the
models already loaded stay up.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from engine.errors import EdgetuneError
from engine.serve.api_errors import ApiError


def default_name(spec: str) -> str:
    """What `/v1/models` calls a model: its file or folder name (`model-q8_0.gguf` -> `model-q8_0`)."""
    p = Path(spec.rstrip("/\\"))
    name = p.name or spec
    return name[:-5] if name.lower().endswith(".gguf") else name


def parse_model_args(items: list[str]) -> list[tuple[str, str]]:
    """`[NAME=]SPEC` arguments -> unique (name, spec) pairs; repeated names get -2, -3, ..."""
    pairs, seen = [], set()
    for item in items:
        name, sep, spec = item.partition("=")
        if not sep or not name or "/" in name or "\\" in name or Path(item).exists():
            name, spec = default_name(item), item
        base, n = name, 1
        while name in seen:
            n += 1
            name = f"{base}-{n}"
        seen.add(name)
        pairs.append((name, spec))
    return pairs


def context_length(backend) -> Optional[int]:
    """The most tokens (prompt + answer) the loaded model can attend to, if its backend says."""
    if hasattr(backend, "llm"):
        return int(backend.llm.n_ctx())
    if hasattr(backend, "model") and hasattr(backend.model, "window"):
        return int(backend.model.window)
    cfg = getattr(getattr(backend, "model", None), "config", None)
    return int(getattr(cfg, "max_position_embeddings", 0) or 0) or None


@dataclass
class ServedModel:
    """One entry of the pool; `backend` is None until the first request loads it."""

    name: str
    spec: str
    created: int = field(default_factory=lambda: int(time.time()))
    backend: object = None
    label: str = ""
    # a backend keeps per-generation state (llama.cpp's KV cache, ONNX generator): one request at a time
    busy: threading.Lock = field(default_factory=threading.Lock)
    loading: threading.Lock = field(default_factory=threading.Lock)


class ModelPool:
    """name -> ServedModel, loading on demand with ChatSession's backend choice and memory check."""

    def __init__(self, pairs: list[tuple[str, str]], backend: str = "auto", template: Optional[str] = None,
                 on_loaded: Callable[[ServedModel, float], None] = lambda m, s: None):
        self.models = {name: ServedModel(name, spec) for name, spec in pairs}
        self.backend, self.template, self.on_loaded = backend, template, on_loaded

    def check_files(self) -> None:
        """Name a missing .gguf at start rather than at the first request (other specs may be hub ids)."""
        for m in self.models.values():
            if m.spec.lower().endswith(".gguf") and not Path(m.spec).is_file():
                raise EdgetuneError(f"GGUF file '{m.spec}' not found (model {m.name!r}).")

    def names(self) -> list[str]:
        """The served names, in the order given."""
        return list(self.models)

    def entry(self, name: str) -> ServedModel:
        """The entry for `name`, or a 404 listing the names this server has."""
        if name not in self.models:
            raise ApiError(404, f"The model {name!r} does not exist on this server; it serves: "
                                f"{', '.join(self.models)} (see GET /v1/models).", "model_not_found", "model")
        return self.models[name]

    def accepts_images(self, model: ServedModel) -> bool:
        """Whether `model` reads images: its loaded backend says, or before loading the backend class
        its spec would get (decided from small files, e.g. a VLM folder's processor_config.json)."""
        if model.backend is not None:
            return bool(getattr(model.backend, "accepts_images", False))
        from engine.chat.backends import backend_class

        try:
            return bool(getattr(backend_class(model.spec, self.backend), "accepts_images", False))
        except EdgetuneError:  # not loadable at all: the load reports why
            return False

    def load(self, name: str) -> ServedModel:
        """The loaded model `name` (blocking: call it from a worker thread)."""
        from engine.chat import ChatSession

        model = self.entry(name)
        with model.loading:  # two first requests at once load it once
            if model.backend is None:
                start = time.perf_counter()
                try:
                    session = ChatSession(model.spec, backend=self.backend, template=self.template)
                except EdgetuneError as e:  # not found, no template, too big for free memory, ...
                    raise ApiError(503, f"Model {name!r} could not be loaded: {e}", "model_load_failed", "model") from None
                model.backend, model.label = session.backend, session.label
                if hasattr(model.backend, "keep_prefix"):
                    # a shared prefix is not evaluated again: without it llama.cpp re-reads the whole
                    # prompt per request (measured: 4-6x fewer tokens/s than llama-cpp-python's server)
                    model.backend.keep_prefix = True
                self.on_loaded(model, time.perf_counter() - start)
        return model
