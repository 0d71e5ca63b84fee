"""engine/ and exporters/ must never import Qt (the headless CLI runs on servers without it)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
QT_IMPORT = re.compile(r"^\s*(from|import)\s+(PySide6|PySide2|PyQt5|PyQt6|qtpy|shiboken6|app)\b", re.M)


def test_no_qt_or_app_import_in_engine_sources():
    offenders = []
    for pkg in ("engine", "exporters"):
        for f in sorted((REPO / pkg).rglob("*.py")):
            for m in QT_IMPORT.finditer(f.read_text(encoding="utf-8")):
                offenders.append(f"{f.relative_to(REPO)}: {m.group(0).strip()}")
    assert not offenders, "engine/exporters import Qt or the app:\n" + "\n".join(offenders)


def test_importing_every_engine_module_loads_no_qt():
    code = r"""
import importlib, pkgutil, sys
import engine, exporters
failed = []
for pkg in (engine, exporters):
    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
        if m.name.endswith("__main__"):
            continue  # running it would start the CLI
        try:
            importlib.import_module(m.name)
        except ImportError as e:  # an optional dependency missing is not our concern here
            failed.append(f"{m.name}: {e}")
qt = sorted(n for n in sys.modules if n.split(".")[0] in ("PySide6", "PySide2", "PyQt5", "PyQt6", "shiboken6", "app"))
print("QT:" + ",".join(qt))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    line = [l for l in out.stdout.splitlines() if l.startswith("QT:")][-1]
    assert line == "QT:", f"importing engine/exporters pulled in Qt: {line}"
