"""The Runs list: one row per run folder, with the training stage it ran."""

from __future__ import annotations

import json

from app.runs_page import COLUMNS


def make_run(root, name: str, config: str, events: list[dict]) -> None:
    run = root / name
    (run / "adapter").mkdir(parents=True)
    (run / "config.yaml").write_text(config, encoding="utf-8")
    (run / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")


def test_runs_page_shows_each_runs_stage(qtbot, state, settings):
    from app.runs_page import RunsPage

    root = settings.runs_dir
    finished = {"v": 1, "type": "run_finished", "time": 3.0, "status": "completed", "step": 2, "paths": {}, "metrics": {}}
    make_run(root, "dpo-run", "stage: dpo\nmethod: lora\nmodel: {name_or_path: m}\n",
             [{"v": 1, "type": "run_started", "time": 2.0, "stage": "dpo", "total_steps": 2}, finished])
    make_run(root, "old-sft-run", "method: lora\nmodel: {name_or_path: m}\n",  # before stages: no `stage` anywhere
             [{"v": 1, "type": "run_started", "time": 1.0, "total_steps": 2}, finished])
    make_run(root, "rm-run", "stage: rm\nmethod: lora\n",
             [{"v": 1, "type": "run_started", "time": 4.0, "stage": "rm", "total_steps": 2}, finished])
    page = RunsPage(state, settings)
    qtbot.addWidget(page)
    col = COLUMNS.index("Stage")
    stages = {page.table.item(row, 0).text(): page.table.item(row, col).text() for row in range(page.table.rowCount())}
    assert stages == {"dpo-run": "dpo", "old-sft-run": "sft", "rm-run": "rm"}
    page.select_path(root / "rm-run")  # a reward model scores answers: no chat, no export
    assert not page.chat_button.isEnabled() and not page.export_button.isEnabled()
    assert "reward model" in page.chat_button.toolTip()
    page.select_path(root / "dpo-run")
    assert page.chat_button.isEnabled() and page.export_button.isEnabled()
