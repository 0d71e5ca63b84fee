"""Write a tiny VLM built in memory (engine/vision/tiny_*.py) to its folder atomically."""

from __future__ import annotations

import shutil
from pathlib import Path


def save_tiny(model, processor, out: Path) -> Path:
    """Save `model` (safetensors) and `processor` under a temp name, then rename it to `out` (replacing it)."""
    tmp = out.with_name(f".{out.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp), safe_serialization=True)
    processor.save_pretrained(str(tmp))
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out
