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
    from app.plan_view import VERDICT_WORDS

    assert page.plan_view.verdict.text().startswith(VERDICT_WORDS[plan["verdict"]])
    assert page.plan_view.table.rowCount() == len(plan["breakdown"]) >= 5
    assert page.plan_view.table.item(0, 2).text()  # where each term comes from
    assert page.device_label.text().startswith("This machine:")
    if plan["device"] == "cpu":
        assert "no GPU found" in page.device_label.text()
    else:
        assert plan["target"] in page.device_label.text()
    assert f"micro-batch {plan['batch_size']}" in page.plan_view.run.text()
    assert page.plan_view.bar.budget == pytest.approx(plan["memory_gb"])


def test_plan_for_a_catalog_gpu_and_bad_settings(qtbot, page, state, settings):
    page.select_preset(str(PRESETS_DIR / "gpu_8b_qlora.yaml"))
    page.target.setCurrentIndex(page.target.findText("NVIDIA GeForce RTX 2060 (6 GB)"))
    assert page.plan_args()[-2:] == ["--gpu", "NVIDIA GeForce RTX 2060"]
    plan = wait_plan(qtbot, page)
    assert plan["target"] == "NVIDIA GeForce RTX 2060" and plan["memory_gb"] == 6
    assert plan["verdict"] == "does not fit" and page.plan_view.verdict.text().startswith("Does not fit")
    assert "Planning for <b>NVIDIA GeForce RTX 2060</b>" in page.device_label.text()
    assert "•" in page.plan_view.detail.text() and "→ set " in page.plan_view.detail.text()  # advice, with its steps
    assert settings.value("plan/target") == "NVIDIA GeForce RTX 2060 (6 GB)"  # remembered for next time
    page.editors["method"].widget.setCurrentText("full")
    page.advanced.editors["quant.load_in"].widget.setCurrentText("4bit")
    page.replan()
    assert "quant.load_in=4bit" in page.config_error.text()
    assert "Fix the setting" in page.plan_view.verdict.text()


def test_plan_for_a_mac_or_a_cpu_box_and_a_catalog_name_given_as_vram(qtbot, page, state):
    page.select_preset(str(PRESETS_DIR / "cpu_quickstart.yaml"))
    page.target.setCurrentIndex(page.target.findText("CPU 32 GB"))
    assert page.plan_args()[-2:] == ["--gpu", "CPU 32GB"]
    plan = wait_plan(qtbot, page)
    assert plan["device"] == "cpu" and plan["memory_gb"] == 32 and "32 GB of RAM" in page.device_label.text()
    page.target.setCurrentIndex(page.target.findText("Apple Mac 16 GB"))
    plan = wait_plan(qtbot, page)
    assert plan["device"] == "mps" and "usable by the GPU" in page.device_label.text()
    page.target.setCurrentIndex(page.target.findText("NVIDIA A10G (24 GB)"))
    assert page.plan_args()[-2:] == ["--vram", "24"]  # 'A10G' reads as a size; the catalog's GB goes instead
    wait_plan(qtbot, page)
    assert "<b>NVIDIA A10G</b>: 24 GB of GPU memory" in page.device_label.text()


def test_plan_target_starts_on_this_machine_and_is_remembered(qtbot, state, settings):
    from app.method_page import MethodPage

    first = MethodPage(state, settings)
    qtbot.addWidget(first)
    assert first.target.currentIndex() == 0 and first.target.currentData() is None
    first.target.setCurrentIndex(first.target.findText("NVIDIA GeForce RTX 3090 (24 GB)"))
    again = MethodPage(state, settings)
    qtbot.addWidget(again)
    assert again.target.currentText() == "NVIDIA GeForce RTX 3090 (24 GB)"
