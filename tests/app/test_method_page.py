"""Method & fit: presets, main knobs, the generated Advanced panel, and the planner's verdict."""

from __future__ import annotations

import pytest

from engine.config import FIELDS
from engine.paths import PRESETS_DIR


@pytest.fixture
def page(qtbot, state, settings, fake_engine):
    from app.method_page import MethodPage

    p = MethodPage(state, settings)
    qtbot.addWidget(p)
    return p


def test_preset_fills_the_knobs_and_advanced_holds_the_rest(qtbot, page, state):
    page.select_preset(str(PRESETS_DIR / "cpu_quickstart.yaml"))
    assert page.editors["method"].text() == "lora" and page.editors["optim.lr"].text() == "0.001"
    assert page.editors["optim.batch_size"].text() == "8"
    shown = set(page.editors) | set(page.advanced.editors)
    assert shown | {"model.name_or_path", "data.path", "data.format", "data.columns", "data.on_error",
                    "data.system_prompt", "output_dir"} == set(FIELDS)
    assert not set(page.editors) & set(page.advanced.editors)
    assert "Brightmoss" not in page.preset_text.text() and "CPU" in page.preset_text.text()


def test_bad_combination_is_named_and_plan_is_shown_for_good_ones(qtbot, page, state):
    page.editors["method"].widget.setCurrentText("full")
    page.advanced.editors["quant.load_in"].widget.setCurrentText("4bit")
    page.replan()
    assert "quant.load_in=4bit" in page.config_error.text()
    page.advanced.editors["quant.load_in"].widget.setCurrentText("none")
    page.replan()
    qtbot.waitUntil(lambda: page.plan_view.plan is not None, timeout=20000)
    assert page.config_error.text() == ""
    assert "GB planned peak" in page.plan_view.verdict.text()
    assert page.plan_view.table.rowCount() >= 3
