"""`engine plan` end to end: no torch, the output contract, and accuracy against real CPU training steps."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def run_engine(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "engine", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=timeout)


def test_plan_does_not_import_torch():
    code = ("import sys, contextlib, io\nfrom engine.cli.main import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    rc = main(['plan', 'assets/presets/gpu_8b_qlora.yaml', '--gpu', 'RTX 4060'])\n"
            "assert rc == 0, rc\n"
            "heavy = [m for m in ('torch', 'transformers', 'peft', 'PySide6') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=120)


def test_plan_prints_breakdown_and_ends_with_total():
    out = run_engine("plan", "assets/presets/gpu_8b_qlora.yaml", "--gpu", "RTX 4060")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert lines[-1].startswith("total: ") and lines[-1].endswith(" GB")
    for part in ("base weights", "adapter weights", "gradients", "optimizer state", "activations",
                 "logits and loss", "framework overhead", "verdict:"):
        assert part in out.stdout


def test_plan_json_is_the_same_plan():
    out = run_engine("plan", "model=qwen2.5-7b", "method=qlora", "max_len=1024", "batch_size=auto", "--vram", "12", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["memory_gb"] == 12 and data["batch_size"] >= 1
    assert sum(data["breakdown"].values()) == pytest.approx(data["total_gb"], abs=0.01)
    text = run_engine("plan", "model=qwen2.5-7b", "method=qlora", "max_len=1024", "batch_size=auto", "--vram", "12")
    assert text.stdout.strip().endswith(f"total: {data['total_gb']:.1f} GB")


def test_plan_errors_are_one_line():
    out = run_engine("plan", "model=no-such/model-7b", "--gpu", "RTX 4060")
    assert out.returncode == 2 and out.stderr.startswith("error: The memory planner does not know")
    out = run_engine("plan", "assets/presets/gpu_1b_qlora.yaml", "--gpu", "RTX 9999")
    assert out.returncode == 2 and "not in the planner's catalog" in out.stderr and "Traceback" not in out.stderr


# --- accuracy against real training steps on CPU (the whole grid: benchmarks/plan_accuracy.py) ---

def _measure(point: dict) -> float:
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "plan_accuracy.py"), "--child", json.dumps(point)],
                         capture_output=True, text=True, cwd=REPO, timeout=1200)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])["peak_gb"]


@pytest.mark.slow
@pytest.mark.parametrize("which,method,batch,seq,ckpt", [
    ("tiny", "lora", 4, 512, False),
    ("tiny", "qlora", 2, 512, True),
    ("bundled", "lora", 2, 128, False),
    ("bundled", "qlora", 2, 128, False),  # bf16 copies of the fp32 file's embedding: the mapping is released
])
def test_cpu_estimate_within_20_percent_of_measured_peak(which, method, batch, seq, ckpt, tiny_model_dir,
                                                         bundled_model_dir):
    sys.path.insert(0, str(REPO / "benchmarks"))
    from plan_accuracy import planned_gb

    from engine.plan.run_spec import compute_dtype

    model_dir = tiny_model_dir if which == "tiny" else bundled_model_dir
    point = {"model_dir": str(model_dir), "tokenizer": str(bundled_model_dir), "method": method, "batch": batch,
             "seq": seq, "gc": ckpt, "dropout": 0.0, "dtype": compute_dtype("auto", "cpu")}
    measured, planned = _measure(point), planned_gb(point)
    assert 0.8 <= planned / measured <= 1.2, (planned, measured)


def test_malloc_threshold_pins_on_linux():
    code = "from engine.plan import pin_malloc_threshold; print(pin_malloc_threshold())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60)
    assert out.stdout.strip() == str(sys.platform.startswith("linux"))
