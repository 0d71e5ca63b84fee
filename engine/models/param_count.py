"""A model folder's parameter count read from its safetensors headers (no weights loaded)."""

from __future__ import annotations

import json
import struct
from pathlib import Path


def param_count(model_dir: Path, only=None) -> int:
    """Parameters of an HF folder from its safetensors headers; 0 when it has none.

    `only(name) -> bool` counts just the tensors it accepts (e.g. a VLM's vision tower)."""
    total = 0
    for f in Path(model_dir).glob("*.safetensors"):
        with open(f, "rb") as fh:
            header = json.loads(fh.read(struct.unpack("<Q", fh.read(8))[0]))
        for name, meta in header.items():
            if name != "__metadata__" and (only is None or only(name)):
                n = 1
                for d in meta["shape"]:
                    n *= d
                total += n
    return total
