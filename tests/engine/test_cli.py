import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_engine(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True, text=True, cwd=REPO, timeout=timeout)


def test_help_is_fast_and_does_not_import_torch():
    code = ("import sys, contextlib, io\nfrom engine.cli.main import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    try: main(['--help'])\n    except SystemExit: pass\n"
            "heavy = [m for m in ('torch', 'transformers', 'PySide6') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
    start = time.perf_counter()
    out = run_engine("--help")
    assert out.returncode == 0 and "data" in out.stdout
    assert time.perf_counter() - start < 2.0


def test_config_fields_lists_help_and_aliases():
    out = run_engine("config", "--fields")
    assert out.returncode == 0
    assert "optim.lr: float = 0.0002" in out.stdout and "(alias: lr)" in out.stdout
    assert "optim.batch_size: int or 'auto' = 'auto'" in out.stdout


def test_config_resolves_preset_with_overrides():
    out = run_engine("config", "assets/presets/cpu_quickstart.yaml", "lr=0.002", "lora_r=8")
    assert out.returncode == 0, out.stderr
    assert "lr: 0.002" in out.stdout and "r: 8" in out.stdout


def test_config_error_is_one_clear_line():
    out = run_engine("config", "lr=fast")
    assert out.returncode == 2
    assert "error: Config key 'optim.lr'" in out.stderr and "Traceback" not in out.stderr


def test_engine_and_exporters_never_import_qt():
    for folder in ("engine", "exporters"):
        for path in (REPO / folder).rglob("*.py"):
            text = path.read_text()
            assert "PySide6" not in text and "shiboken6" not in text, path
