"""The whole wizard on the real engine and a tiny model: data, train, cancel, resume, export, chat.

Slow: it starts `engine train` (twice) and `engine export` as real child processes.
"""

from __future__ import annotations

import importlib.util

import pytest

from engine.paths import DATASETS_DIR


@pytest.mark.slow
def test_wizard_end_to_end_on_the_tiny_model(qtbot, settings, tiny_model_dir, monkeypatch):
    from app.main_window import MainWindow

    monkeypatch.delenv("EDGETUNE_ENGINE", raising=False)
    w = MainWindow(settings)
    qtbot.addWidget(w)
    w.show()

    # Model: a local folder.
    w.go(1)
    w.model_page.set_spec(str(tiny_model_dir))
    qtbot.waitUntil(lambda: w.state.model_info is not None, timeout=120000)
    assert w.state.model_info.layers == 2

    # Data: the sample set, with its stats.
    w.go(2)
    with qtbot.waitSignal(w.state.data_report_changed, timeout=120000) as blocker:
        w.data_page.set_path(str(DATASETS_DIR / "quillon_facts.jsonl"))
    assert blocker.args[0].records == 40 and w.data_page.stats["records"].text() == "40"

    # Method: small and quick.
    w.go(3)
    for key, text in (("method", "lora"), ("optim.max_steps", "6"), ("optim.batch_size", "4"),
                      ("sequence.max_len", "128"), ("train.save_steps", "1")):
        w.state.set(key, text)

    # Train: real events reach the curve; cancel checkpoints; resume finishes.
    w.go(4)
    page = w.train_page
    page.process.grace_ms = 120000
    assert page.start()
    qtbot.waitUntil(lambda: page.plot.point_count() >= 1, timeout=300000)
    assert page.plot.losses[0] > 0 and page.labels["device"].text().startswith("cpu")
    with qtbot.waitSignal(page.run_finished, timeout=300000) as blocker:
        page.cancel()
    run_dir, status = blocker.args
    if status == "completed":  # the last steps raced the signal; the run is still whole
        pytest.skip("training finished before Cancel arrived (machine too fast for 6 steps)")
    assert status == "interrupted" and not page.process.killed
    stopped_at = page.plot.steps[-1]
    assert page.resume_button.isEnabled()
    with qtbot.waitSignal(page.run_finished, timeout=300000) as blocker:
        assert page.resume()
    assert blocker.args[1] == "completed", page.log.toPlainText()[-2000:]
    assert page.plot.steps[-1] == 6 and stopped_at < 6

    # Runs: the finished run is listed.
    w.go(0)
    assert w.runs_page.runs[0].status == "completed"

    # Export: GGUF f16 of the tuned tiny model, verified.
    if importlib.util.find_spec("exporters.gguf.cli") is None:
        pytest.skip("the GGUF exporter has not landed")
    w.go(5)
    ex = w.export_page
    for q, cb in ex.quant_boxes.items():
        cb.setChecked(q == "f16")
    assert ex.start()
    qtbot.waitUntil(lambda: not ex.process.is_running() and not ex.jobs, timeout=600000)
    assert ex.results == [("gguf", "done")], ex.log.toPlainText()[-3000:]
    assert ex.verify.rowCount() >= 1 and "ollama create" in ex.modelfile.toPlainText()

    # Chat: one message to the tuned run.
    if importlib.util.find_spec("engine.chat") is None:
        pytest.skip("engine.chat has not landed")
    w.go(6)
    chat = w.chat_page
    chat.base.enabled.setChecked(False)
    chat.exported.enabled.setChecked(False)
    chat.tuned.load()
    qtbot.waitUntil(lambda: not chat.tuned.busy, timeout=300000)
    assert chat.tuned.loaded_spec == run_dir, chat.tuned.status.text()
    chat.input.setText("Who makes the Quillon Q7 lantern?")
    assert chat.send() == 1
    qtbot.waitUntil(lambda: not chat.tuned.busy, timeout=300000)
    assert "tokens/s" in chat.tuned.status.text()
    w.close()
