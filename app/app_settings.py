"""Settings that outlive the window: last folders, theme, default output folder.

Stored with QSettings (the OS's native place: ~/.config/edgetune/edgetune.conf on
Linux, the registry on Windows, a plist on macOS). Tests and the screenshot
script pass an explicit .ini path so they never touch the user's settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from PySide6.QtCore import QByteArray, QSettings

THEMES = ("system", "light", "dark")


def default_runs_dir() -> Path:
    """~/edgetune/runs: visible in the home folder, where people look for their results."""
    return Path.home() / "edgetune" / "runs"


class AppSettings:
    """Typed accessors over QSettings."""

    def __init__(self, path: Optional[str | Path] = None):
        if path is None:
            self.qs = QSettings("edgetune", "edgetune")
        else:
            self.qs = QSettings(str(path), QSettings.Format.IniFormat)

    # folders -------------------------------------------------------------
    def last_folder(self, kind: str) -> str:
        """Last folder used by a file dialog of this kind (data, model, export, run)."""
        return str(self.qs.value(f"folders/{kind}", str(Path.home())))

    def set_last_folder(self, kind: str, path: str | Path) -> None:
        p = Path(path)
        self.qs.setValue(f"folders/{kind}", str(p if p.is_dir() else p.parent))

    @property
    def runs_dir(self) -> Path:
        return Path(str(self.qs.value("output/runs_dir", str(default_runs_dir()))))

    @runs_dir.setter
    def runs_dir(self, path: str | Path) -> None:
        self.qs.setValue("output/runs_dir", str(path))

    @property
    def extra_run_folders(self) -> list[str]:
        value = self.qs.value("runs/extra_folders", [])
        if isinstance(value, str):  # QSettings returns a 1-item list as a plain string
            value = [value]
        return [str(v) for v in (value or [])]

    def add_run_folder(self, path: str | Path) -> None:
        folders = self.extra_run_folders
        if str(path) not in folders:
            self.qs.setValue("runs/extra_folders", folders + [str(path)])

    # look ------------------------------------------------------------------
    @property
    def theme(self) -> str:
        value = str(self.qs.value("view/theme", "system"))
        return value if value in THEMES else "system"

    @theme.setter
    def theme(self, value: str) -> None:
        self.qs.setValue("view/theme", value if value in THEMES else "system")

    # window ----------------------------------------------------------------
    def geometry(self) -> Optional[QByteArray]:
        value = self.qs.value("window/geometry")
        return value if isinstance(value, QByteArray) else None

    def set_geometry(self, data: QByteArray) -> None:
        self.qs.setValue("window/geometry", data)

    def value(self, key: str, default=None):
        return self.qs.value(key, default)

    def set_value(self, key: str, value) -> None:
        self.qs.setValue(key, value)

    def sync(self) -> None:
        self.qs.sync()
