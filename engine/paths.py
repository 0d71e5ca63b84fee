"""Where edgetune keeps things: the assets that ship with it and its cache."""

from __future__ import annotations

import os
from pathlib import Path

ASSETS_DIR = Path(__file__).resolve().parents[1] / "assets"
PRESETS_DIR = ASSETS_DIR / "presets"
DATASETS_DIR = ASSETS_DIR / "datasets"


def cache_dir() -> Path:
    """The cache root: $EDGETUNE_HOME, else $XDG_CACHE_HOME/edgetune, else ~/.cache/edgetune."""
    if os.environ.get("EDGETUNE_HOME"):
        return Path(os.environ["EDGETUNE_HOME"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "edgetune"
