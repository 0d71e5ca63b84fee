"""Layers point one way: engine's core never imports exporters/ (ARCHITECTURE.md, "Layers point one way").

app -> engine CLI/events -> engine and exporters. Exporters may use engine's helpers (models, data,
formats, runtimes); engine's core does not reach into exporters: the export verbs are wired in
by the CLI's command registry (engine/cli/export_cmd.py names their modules), the only place
under engine/ allowed to know them.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ENGINE = REPO / "engine"
WIRING = {ENGINE / "cli"}  # the command registry: the one place that may name exporters' modules
FORBIDDEN = ("exporters", "app")


def _imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) of every import statement and every importlib.import_module("...") call."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
              and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            found.append((node.lineno, node.args[0].value))
    return found


def core_sources() -> list[Path]:
    """Every .py file of engine/ outside the CLI's command registry."""
    return [f for f in sorted(ENGINE.rglob("*.py")) if not any(w in f.parents for w in WIRING)]


def test_engine_core_sources_do_not_import_exporters():
    offenders = []
    for f in core_sources():
        for line, module in _imported_modules(ast.parse(f.read_text(encoding="utf-8"), str(f))):
            if module.split(".")[0] in FORBIDDEN:
                offenders.append(f"{f.relative_to(REPO)}:{line}: imports {module}")
    assert not offenders, ("engine's core imports exporters/ or the app; move what both need under engine/ "
                           "(engine/formats, engine/runtimes) and import it from there:\n" + "\n".join(offenders))


def test_the_walk_sees_the_core_packages():
    """Guard the guard: the layers the rule is about are really walked."""
    walked = {f.relative_to(ENGINE).parts[0] for f in core_sources()}
    assert {"config", "train", "plan", "models", "data", "chat", "formats", "runtimes", "events.py", "runs.py"} <= walked
    assert "cli" not in walked


def test_detector_catches_each_import_form():
    src = ("import exporters.gguf\nfrom exporters.onnx.targets import TARGETS\n"
           "def f():\n    import importlib\n    importlib.import_module('exporters.onnx.cli')\n")
    assert [m for _, m in _imported_modules(ast.parse(src))] == ["exporters.gguf", "exporters.onnx.targets",
                                                                 "importlib", "exporters.onnx.cli"]


def test_importing_engine_core_loads_no_exporters():
    code = r"""
import importlib, pkgutil, sys
import engine
for m in pkgutil.walk_packages(engine.__path__, "engine."):
    if m.name.startswith("engine.cli") or m.name.endswith("__main__"):
        continue
    try:
        importlib.import_module(m.name)
    except ImportError:
        pass  # an optional dependency missing is not this test's concern
print("EXPORTERS:" + ",".join(sorted(n for n in sys.modules if n.split(".")[0] == "exporters")))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    line = [l for l in out.stdout.splitlines() if l.startswith("EXPORTERS:")][-1]
    assert line == "EXPORTERS:", f"importing engine's core pulled in {line}"
