"""The Train page drives a child engine process: live curve, cancel, resume, errors, crashes."""

from __future__ import annotations

import pytest


@pytest.fixture
def page(qtbot, state, settings, fake_engine, tmp_path):
    from app.train_page import TrainPage

    state.set("data.path", str(tmp_path / "data.jsonl"))
    p = TrainPage(state, settings)
    qtbot.addWidget(p)
    return p


def wait_finished(qtbot, page, timeout=20000):
    with qtbot.waitSignal(page.run_finished, timeout=timeout) as blocker:
        pass
    return blocker.args


def test_start_streams_events_into_the_curve(qtbot, page, fake_engine):
    fake_engine.setenv("FAKE_ENGINE_STEPS", "6")
    with qtbot.waitSignal(page.run_finished, timeout=20000) as blocker:
        assert page.start()
    run_dir, status = blocker.args
    assert status == "completed"
    assert page.plot.steps == [1, 2, 3, 4, 5, 6]
    assert page.plot.eval_steps == [2, 4, 6]
    assert page.progress.value() == page.progress.maximum() == 6
    assert page.labels["status"].text() == "completed"
    assert "output_dir=" in page.command.text() and run_dir.startswith(str(page.settings.runs_dir))
    assert not page.resume_button.isEnabled()


def test_cancel_checkpoints_then_resume_continues(qtbot, page, fake_engine):
    fake_engine.setenv("FAKE_ENGINE_STEPS", "40")
    fake_engine.setenv("FAKE_ENGINE_DELAY", "0.1")
    page.start()
    qtbot.waitUntil(lambda: page.plot.point_count() >= 3, timeout=20000)
    with qtbot.waitSignal(page.run_finished, timeout=20000) as blocker:
        page.cancel()
    assert blocker.args[1] == "interrupted"
    stopped_at = page.plot.steps[-1]
    assert stopped_at < 40
    assert page.resume_button.isEnabled()
    with qtbot.waitSignal(page.run_finished, timeout=30000) as blocker:
        assert page.resume()
    assert blocker.args[1] == "completed"
    assert "--resume" in page.process.args
    assert page.plot.steps[-1] == 40 and page.plot.steps == sorted(set(page.plot.steps))


def test_cancel_kills_an_engine_that_ignores_sigterm(qtbot, page, fake_engine):
    fake_engine.setenv("FAKE_ENGINE_MODE", "ignore_term")
    fake_engine.setenv("FAKE_ENGINE_STEPS", "1000")
    fake_engine.setenv("FAKE_ENGINE_DELAY", "0.05")
    page.process.grace_ms = 500
    page.start()
    qtbot.waitUntil(lambda: page.plot.point_count() >= 2, timeout=20000)
    pid = page.process.pid()
    with qtbot.waitSignal(page.run_finished, timeout=10000) as blocker:
        page.cancel()
    assert blocker.args[1] == "interrupted" and page.process.killed
    import os

    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_error_event_becomes_a_readable_dialog(qtbot, page, fake_engine):
    fake_engine.setenv("FAKE_ENGINE_MODE", "error")
    with qtbot.waitSignal(page.run_finished, timeout=20000) as blocker:
        page.start()
    assert blocker.args[1] == "failed"
    box = page.dialog
    assert box is not None and "NaN" in box.text()
    assert "lower the learning rate" in box.informativeText()
    assert "Traceback" not in box.text() + box.informativeText()


def test_crash_is_reported_and_run_stays_resumable(qtbot, page, fake_engine):
    fake_engine.setenv("FAKE_ENGINE_MODE", "crash")
    with qtbot.waitSignal(page.run_finished, timeout=20000) as blocker:
        page.start()
    assert blocker.args[1] == "crashed"
    assert "exit code 1" in page.dialog.text() and "step-2" in page.dialog.text()
    assert "Traceback" not in page.dialog.text() and "RuntimeError" in page.dialog.detailedText()
    assert page.resume_button.isEnabled()


def test_cli_error_line_is_shown(qtbot, page, fake_engine):
    fake_engine.setenv("FAKE_ENGINE_MODE", "usage")
    with qtbot.waitSignal(page.run_finished, timeout=20000) as blocker:
        page.start()
    assert blocker.args[1] == "failed"
    assert page.dialog.text().startswith("Config key 'lr'")


def test_reopened_run_replays_its_curve(qtbot, page, fake_engine):
    with qtbot.waitSignal(page.run_finished, timeout=20000):
        page.start()
    run_dir = page.run_dir
    page.load_run(run_dir)
    assert page.plot.steps == [1, 2, 3, 4, 5, 6] and page.labels["status"].text() == "completed"
