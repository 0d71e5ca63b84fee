"""Where the app icon lives (inside the package, so a wheel and a PyInstaller bundle both carry it)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

ICON = Path(__file__).resolve().parent / "resources" / "edgetune.svg"


def icon_path() -> Optional[Path]:
    return ICON if ICON.is_file() else None
