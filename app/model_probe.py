"""What the Model page shows about a model, read from its files without loading weights.

    info = describe_model("smollm2-135m-instruct")
    info.architecture, info.parameters, info.context_length, info.has_chat_template

The spec is resolved by the engine (`engine.models.resolve_model`: bundled, folder,
.gguf, hub id), so the app accepts exactly what `engine train model=...` accepts.
The parameter count is summed from the safetensors headers (exact, and cheap:
only the JSON header of each file is read).
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional


@dataclass
class ModelInfo:
    """A summary of one resolved model folder."""

    spec: str
    name: str
    source: str
    path: Path
    architecture: str = "unknown"
    model_type: str = "unknown"
    parameters: Optional[int] = None
    context_length: Optional[int] = None
    has_chat_template: bool = False
    layers: Optional[int] = None
    hidden_size: Optional[int] = None
    vocab_size: Optional[int] = None
    dtype: str = ""
    export_support: dict = field(default_factory=dict)  # target -> (supported, detail)


def safetensors_parameter_count(folder: Path) -> Optional[int]:
    """Sum of tensor sizes over every *.safetensors file in `folder` (None when there is none)."""
    files = sorted(Path(folder).glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for f in files:
        with open(f, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n))
        for name, meta in header.items():
            if name != "__metadata__":
                total += math.prod(meta.get("shape", []))
    return total


def has_chat_template(folder: Path) -> bool:
    """True when the tokenizer files carry a chat template (in any of the places transformers reads)."""
    folder = Path(folder)
    if (folder / "chat_template.jinja").is_file() or (folder / "chat_template.json").is_file():
        return True
    cfg = folder / "tokenizer_config.json"
    if cfg.is_file():
        try:
            return bool(json.loads(cfg.read_text(encoding="utf-8")).get("chat_template"))
        except (OSError, json.JSONDecodeError):
            return False
    return False


def _context_length(cfg: dict) -> Optional[int]:
    text_cfg = cfg.get("text_config") or {}
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        for c in (cfg, text_cfg):
            if isinstance(c.get(key), int):
                return c[key]
    return None


def describe_folder(folder: Path, spec: str = "", name: str = "", source: str = "folder") -> ModelInfo:
    """Read config.json, the safetensors headers and the tokenizer files of an HF folder."""
    from app.export_support import export_support

    folder = Path(folder)
    cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    text_cfg = cfg.get("text_config") or {}
    archs = cfg.get("architectures") or []
    info = ModelInfo(
        spec=spec or str(folder), name=name or folder.name, source=source, path=folder,
        architecture=archs[0] if archs else "unknown", model_type=cfg.get("model_type", "unknown"),
        parameters=safetensors_parameter_count(folder), context_length=_context_length(cfg),
        has_chat_template=has_chat_template(folder),
        layers=cfg.get("num_hidden_layers") or text_cfg.get("num_hidden_layers"),
        hidden_size=cfg.get("hidden_size") or text_cfg.get("hidden_size"),
        vocab_size=cfg.get("vocab_size") or text_cfg.get("vocab_size"),
        dtype=str(cfg.get("dtype") or cfg.get("torch_dtype") or ""),
    )
    info.export_support = export_support(info.architecture)
    return info


def describe_model(spec: str) -> ModelInfo:
    """Resolve `spec` the way the engine does (may de-quantise a .gguf once) and describe it."""
    from engine.models import resolve_model

    resolved = resolve_model(spec)
    return describe_folder(resolved.path, spec=spec, name=resolved.name, source=resolved.source)


def format_parameters(n: Optional[int]) -> str:
    """134515008 -> '134.5 M', 8030261248 -> '8.03 B'."""
    if n is None:
        return "unknown"
    if n >= 1e9:
        return f"{n / 1e9:.2f} B"
    if n >= 1e6:
        return f"{n / 1e6:.1f} M"
    return f"{n:,}"
