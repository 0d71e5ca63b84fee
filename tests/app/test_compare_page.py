"""The Compare view: the `engine compare` command it builds, its table and curves from compare.json, cancel and resume."""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from pathlib import Path

import pytest

from engine.paths import DATASETS_DIR

FAKE_COMPARE = Path(__file__).with_name("fake_compare.py")


@pytest.fixture
def dialog(qtbot, state, settings):
    from app.compare_page import CompareDialog

    state.set("data.path", str(DATASETS_DIR / "quillon_facts.jsonl"))
    d = CompareDialog(state, settings)
    qtbot.addWidget(d)
    return d


@pytest.fixture
def fake_compare(monkeypatch):
    monkeypatch.setenv("EDGETUNE_ENGINE", f"{shlex.quote(sys.executable)} {shlex.quote(str(FAKE_COMPARE))}")
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[2]) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return monkeypatch


def test_the_command_line_follows_the_choices(dialog, settings, tmp_path):
    folder = settings.runs_dir / "smollm2-135m-instruct-compare"
    assert dialog.folder.text() == str(folder)  # the default: found again when the view is reopened
    dialog.set_methods(["ia3", "lora"])
    assert dialog.methods() == ["lora", "ia3"]  # registry order
    assert dialog.compare_args() == ["compare", str(folder / "base-config.yaml"), "--methods", "lora,ia3", "--out", str(folder)]
    assert not dialog.answers.isEnabled()  # --answers needs held-out data
    held = DATASETS_DIR / "quillon_heldout.jsonl"
    dialog.heldout.setText(str(held))
    dialog.answers.setChecked(True)
    dialog.folder.setText(str(tmp_path / "cmp"))
    assert dialog.compare_args()[-5:] == ["--out", str(tmp_path / "cmp"), "--heldout", str(held), "--answers"]
    assert "engine compare" in dialog.command.text() and "--answers" in dialog.command.text()
    dialog.set_methods([])
    assert not dialog.start_button.isEnabled() and not dialog.start()
    dialog.folder.setText(str(folder))
    dialog.state.set("model.name_or_path", "Qwen/Qwen2.5-0.5B-Instruct")  # another model: its own default folder
    assert dialog.folder.text() == str(settings.runs_dir / "Qwen2.5-0.5B-Instruct-compare")
    assert "Model Qwen/Qwen2.5-0.5B-Instruct" in dialog.budget.text()
    dialog.set_methods(["lora"])
    dialog.heldout.setText(str(tmp_path / "missing.jsonl"))
    assert not dialog.start() and "no such file" in dialog.status.text()


def test_the_table_and_plot_fill_from_compare_json(dialog, tmp_path):
    rows = [{"method": "lora", "group": "reparametrisation", "status": "completed", "trainable_params": 4884480,
             "total_params": 134515008, "peak_memory_gb": 1.23, "tokens_per_s": 812.4, "seconds": 41.0,
             "train_loss": 0.412, "heldout_loss": 1.95, "base_heldout_loss": 3.1, "answers_correct": 4,
             "answers_total": 5, "base_answers_correct": 0, "export": "merge -> GGUF/ONNX + LoRA GGUF",
             "losses": [[1, 3.0], [2, 2.1], [3, 1.2]], "future_key": "ignored"},
            {"method": "bitfit", "group": "selective", "status": "refused", "error": "method=bitfit cannot apply to "
             "this model: BitFit trains only bias terms", "losses": []}]
    folder = tmp_path / "cmp"
    folder.mkdir()
    held = str(DATASETS_DIR / "quillon_heldout.jsonl")
    (folder / "compare.json").write_text(json.dumps({"meta": {"heldout": held}, "rows": rows}))
    dialog.folder.setText(str(folder))
    assert dialog.methods() == ["lora", "bitfit"]  # the comparison's own choices: Resume continues it
    assert dialog.heldout.text() == held and dialog.answers.isChecked()
    assert "2 method(s), 1 completed" in dialog.status.text()
    table = dialog.table
    assert table.rowCount() == 2
    assert table.cell_text("lora", "status") == "completed"
    assert table.cell_text("lora", "trainable") == "4.88M (3.63%)"
    assert table.cell_text("lora", "peak GB") == "1.23" and table.cell_text("lora", "held-out loss") == "1.950"
    assert table.cell_text("lora", "answers") == "4/5" and table.cell_text("lora", "train loss") == "0.412"
    assert table.cell_text("bitfit", "status") == "refused"
    assert "bias terms" in table.item(1, 0).toolTip()
    assert dialog.plot.curves["lora"] == [(1, 3.0), (2, 2.1), (3, 1.2)]
    assert dialog.start_button.text() == "Resume"  # a comparison is there: Start continues it


def test_a_run_fills_the_table_live_and_can_be_cancelled_and_resumed(qtbot, dialog, fake_compare, tmp_path):
    folder = tmp_path / "cmp"
    dialog.folder.setText(str(folder))
    dialog.set_methods(["lora", "ia3", "bitfit"])
    fake_compare.setenv("FAKE_COMPARE_DELAY", "0.4")
    assert dialog.start()
    assert (folder / "base-config.yaml").is_file()  # the wizard's resolved config, as the command's CONFIG
    qtbot.waitUntil(lambda: dialog.table.cell_text("lora", "status") == "completed", timeout=60000)
    qtbot.waitUntil(lambda: len(dialog.plot.curves.get("ia3", [])) >= 1, timeout=60000)  # live points, from the output
    assert dialog.table.cell_text("ia3", "status") == "running"
    assert dialog.table.cell_text("bitfit", "status") == "pending"
    assert dialog.progress.value() > 0
    with qtbot.waitSignal(dialog.process.finished, timeout=60000):
        dialog.cancel()
    assert "Resume" in dialog.status.text() and dialog.start_button.text() == "Resume"
    done = json.loads((folder / "compare.json").read_text())["rows"]
    assert [r["method"] for r in done] == ["lora"]

    fake_compare.setenv("FAKE_COMPARE_DELAY", "0.01")
    with qtbot.waitSignal(dialog.process.finished, timeout=60000):
        assert dialog.start()
    log = dialog.log.toPlainText()
    assert "[1/3] lora: kept (finished earlier)" in log
    assert [dialog.table.cell_text(m, "status") for m in ("lora", "ia3", "bitfit")] == ["completed", "completed", "refused"]
    assert dialog.status.text().startswith("Done: 2 method(s) measured; not completed: bitfit")
    assert dialog.progress.value() == 1000
    assert set(dialog.plot.curves) >= {"lora", "ia3"}


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("EDGETUNE_COMPARE_E2E"), reason="about 110 s on 2 shared CPU cores (three engine "
                    "processes, two trainings); set EDGETUNE_COMPARE_E2E=1 to run it")
def test_the_real_engine_compare_on_the_tiny_model(qtbot, dialog, state, tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("EDGETUNE_ENGINE", raising=False)
    for key, text in (("model.name_or_path", str(tiny_model_dir)), ("optim.max_steps", "2"), ("optim.batch_size", "4"),
                      ("sequence.max_len", "128"), ("method", "lora")):
        state.set(key, text)
    dialog.folder.setText(str(tmp_path / "cmp"))
    dialog.set_methods(["lora", "ia3"])
    t0 = time.monotonic()
    with qtbot.waitSignal(dialog.process.finished, timeout=300000):
        assert dialog.start()
    print(f"engine compare lora,ia3 x 2 steps: {time.monotonic() - t0:.1f} s")
    assert dialog.status.text().startswith("Done: 2 method(s) measured"), dialog.log.toPlainText()[-3000:]
    assert [dialog.table.cell_text(m, "status") for m in ("lora", "ia3")] == ["completed", "completed"]
    assert set(dialog.plot.curves) == {"lora", "ia3"} and all(dialog.plot.curves.values())
    assert (tmp_path / "cmp" / "compare.md").is_file()
