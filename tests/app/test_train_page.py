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
    assert page.metrics_plot is None and page.labels["metrics"].isHidden()  # SFT steps carry no metrics
    assert page.labels["stage"].text() == "sft"
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


def test_a_dpo_run_plots_reward_margin_and_accuracy_next_to_the_loss(qtbot, stage_state, settings, fake_engine, tmp_path):
    from app.train_page import TrainPage

    page = TrainPage(stage_state, settings)
    qtbot.addWidget(page)
    stage_state.set("data.path", str(tmp_path / "pairs.jsonl"))
    stage_state.set("stage", "dpo")
    assert "stage=dpo" in page.command.text()
    with qtbot.waitSignal(page.run_finished, timeout=20000) as blocker:
        assert page.start()
    assert blocker.args[1] == "completed" and page.plot.steps == [1, 2, 3, 4, 5, 6]
    plot = page.metrics_plot
    assert plot is not None and not plot.isHidden() and plot.stage == "dpo"
    assert set(plot.keys()) == {"reward_chosen", "reward_rejected", "reward_margin", "reward_accuracy"}
    assert plot.series["reward_accuracy"][0] == [1, 2, 3, 4, 5, 6]
    plot.redraw()
    assert plot.axes["share"].get_ylim() == (-0.03, 1.03)  # accuracy on a 0..1 axis, the rest below
    labels = [t.get_text() for t in plot.axes["value"].get_legend().get_texts()]
    assert "reward margin (chosen − rejected)" in labels
    assert page.labels["stage"].text() == "dpo"
    assert page.labels["metrics"].text() == "acc 1.00 · margin 0.54" and not page.labels["metrics"].isHidden()
    assert "stage dpo" in page.log.toPlainText()
    run_dir = page.run_dir
    page.load_run(run_dir)  # a replay plots the same
    assert page.metrics_plot.series["reward_margin"][0] == [1, 2, 3, 4, 5, 6]


def event(type_, **fields):
    return {"v": 1, "type": type_, "time": 0.0, **fields}


def test_metrics_plot_follows_whatever_keys_arrive(qtbot, page):
    page.handle_event(event("run_started", run_dir="r", total_steps=4, device="cpu", stage="rm"), live=False)
    page.handle_event(event("step", step=1, total_steps=4, loss=0.7, lr=1e-4), live=False)
    page.handle_event(event("step", step=2, total_steps=4, loss=0.6, lr=1e-4, metrics={}), live=False)
    assert page.metrics_plot is None  # no metrics (missing or empty): no second plot
    page.handle_event(event("step", step=3, total_steps=4, loss=0.5, lr=1e-4,
                            metrics={"accuracy": 0.75, "margin": 0.42, "note": "text is ignored"}), live=False)
    plot = page.metrics_plot
    assert plot.keys() == ["accuracy", "margin"] and plot.stage == "rm"
    assert page.labels["metrics"].text() == "acc 0.75 · margin 0.42"
    page.handle_event(event("step", step=4, total_steps=4, loss=0.4, lr=1e-4, metrics={"kl": 0.1, "log_ratio": 1.0}),
                      live=False)
    plot.redraw()
    assert set(plot.axes) == {"share", "value"} and plot.keys() == ["accuracy", "margin", "kl", "log_ratio"]
    page.clear_plots()  # a new run: hidden until its steps carry metrics again
    assert plot.isHidden() and plot.keys() == [] and page.labels["metrics"].isHidden()


def test_a_multi_process_run_shows_each_rank_memory(qtbot, page):
    page.handle_event(event("run_started", run_dir="r", total_steps=4, device="cuda", processes=2), live=False)
    page.handle_event(event("step", step=1, total_steps=4, loss=0.7, lr=1e-4, peak_memory_gb=5.1,
                            rank_memory_gb=[5.1, 4.87]), live=False)
    assert page.labels["memory"].text() == "peak per rank: 5.10 / 4.87 GB"
    page.handle_event(event("step", step=2, total_steps=4, loss=0.6, lr=1e-4, peak_memory_gb=5.2), live=False)
    assert page.labels["memory"].text() == "5.20 GB peak"


def test_rl_answer_length_has_its_own_axis(qtbot, page):
    """GRPO's answer length (tens of tokens) does not squash the rewards (0..1): it is drawn in tokens below them."""
    page.handle_event(event("run_started", run_dir="r", total_steps=2, device="cpu", stage="grpo"), live=False)
    for step, (reward, length) in enumerate([(0.3, 41.5), (0.7, 14.0)], start=1):
        page.handle_event(event("step", step=step, total_steps=2, loss=0.1, lr=1e-4,
                                metrics={"reward": reward, "kl": 0.02, "completion_len": length, "truncated": 0.25}),
                          live=False)
    plot = page.metrics_plot
    plot.redraw()
    assert list(plot.axes) == ["share", "value", "length"]
    assert [line.get_label() for line in plot.axes["length"].get_lines()] == ["answer length (tokens)"]
    assert plot.axes["value"].get_ylim()[1] < 5  # rewards and KL keep their own scale
    assert plot.axes["share"].get_ylabel() == "share"
