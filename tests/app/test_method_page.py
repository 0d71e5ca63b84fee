"""Method & fit: presets, main knobs, the generated Advanced panel, and the real planner's verdict."""

from __future__ import annotations

import pytest

from engine.config import FIELDS
from engine.paths import PRESETS_DIR


@pytest.fixture
def page(qtbot, state, settings, monkeypatch):
    from app.method_page import MethodPage

    monkeypatch.delenv("EDGETUNE_ENGINE", raising=False)  # `engine plan` is cheap: use the real one
    p = MethodPage(state, settings)
    qtbot.addWidget(p)
    return p


def wait_plan(qtbot, page):
    page.plan_view.plan = None
    page.replan()
    qtbot.waitUntil(lambda: page.plan_view.plan is not None or "could not" in page.plan_view.verdict.text(),
                    timeout=60000)
    assert page.plan_view.plan is not None, page.plan_view.verdict.text()
    return page.plan_view.plan


def test_preset_fills_the_knobs_and_advanced_holds_the_rest(qtbot, page, state):
    page.select_preset(str(PRESETS_DIR / "cpu_quickstart.yaml"))
    assert page.editors["method"].text() == "lora" and page.editors["optim.lr"].text() == "0.001"
    assert page.editors["optim.batch_size"].text() == "8"
    shown = set(page.editors) | set(page.advanced.editors)
    assert shown | {"model.name_or_path", "data.path", "data.format", "data.columns", "data.on_error",
                    "data.system_prompt", "output_dir"} == set(FIELDS)
    assert not set(page.editors) & set(page.advanced.editors)
    assert "CPU" in page.preset_text.text()


def test_this_machine_plan_shows_breakdown_and_verdict(qtbot, page, state):
    page.select_preset(str(PRESETS_DIR / "cpu_quickstart.yaml"))
    plan = wait_plan(qtbot, page)
    assert plan["verdict"] in ("fits", "tight", "does not fit")
    assert page.plan_view.verdict.text().startswith(plan["verdict"].capitalize())
    assert page.plan_view.table.rowCount() == len(plan["breakdown"]) >= 5
    assert page.plan_view.table.item(0, 2).text()  # where each term comes from
    assert plan["target"] in page.device_label.text()
    assert page.plan_view.bar.budget == pytest.approx(plan["memory_gb"])


def test_plan_for_a_catalog_gpu_and_bad_settings(qtbot, page, state):
    page.select_preset(str(PRESETS_DIR / "gpu_8b_qlora.yaml"))
    page.target.setCurrentIndex(page.target.findText("NVIDIA GeForce RTX 4060 (8 GB)"))
    assert page.plan_args()[-2:] == ["--gpu", "NVIDIA GeForce RTX 4060"]
    plan = wait_plan(qtbot, page)
    assert plan["target"] == "NVIDIA GeForce RTX 4060" and plan["memory_gb"] == 8
    assert "•" in page.plan_view.detail.text()  # the planner's advice
    page.editors["method"].widget.setCurrentText("full")
    page.advanced.editors["quant.load_in"].widget.setCurrentText("4bit")
    page.replan()
    assert "quant.load_in=4bit" in page.config_error.text()
    assert "Fix the setting" in page.plan_view.verdict.text()
