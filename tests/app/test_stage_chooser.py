"""The Method page's stage chooser: writes `stage`, explains it, warns when the data cannot train it."""

from __future__ import annotations

import pytest

from tests.app.inspect_reports import chat_report, report


@pytest.fixture
def page(qtbot, stage_state, settings, fake_engine):
    from app.method_page import MethodPage

    p = MethodPage(stage_state, settings)  # (the fake engine answers `engine plan` with an error: cheap)
    qtbot.addWidget(p)
    return p


def test_stage_combo_writes_stage_and_explains_it(qtbot, page, stage_state):
    combo = page.stage.combo
    assert [combo.itemText(i) for i in range(combo.count())] == ["sft", "dpo", "orpo", "simpo", "kto", "rm", "grpo", "rloo"]
    assert combo.isEnabled() and page.editors["stage"] is page.stage.editor
    assert "stage" not in page.advanced.editors  # one widget per option
    assert "Supervised fine-tuning" in page.stage.explanation.text() and "alpaca" in page.stage.explanation.text()
    assert "prompt / completion / label" in combo.itemData(combo.findText("kto"), 3)  # per-item tooltip
    combo.setCurrentText("dpo")
    assert stage_state.get("stage") == "dpo" and "stage=dpo" in stage_state.overrides()
    assert "Direct Preference Optimization" in page.stage.explanation.text()
    assert "preference pairs" in page.stage.explanation.text()
    combo.setCurrentText("rm")
    assert "reward model" in page.stage.explanation.text().lower()
    stage_state.set("stage", "orpo")  # the state drives the combo too (a preset, a reopened run)
    assert combo.currentText() == "orpo" and "Odds-Ratio" in page.stage.explanation.text()


def test_only_the_chosen_stage_section_is_shown_and_passed_on(qtbot, page, stage_state):
    sections = page.advanced.sections
    assert sections["dpo"].isHidden() and sections["kto"].isHidden() and not sections["optim"].isHidden()
    page.stage.combo.setCurrentText("dpo")
    assert not sections["dpo"].isHidden() and sections["kto"].isHidden() and sections["rm"].isHidden()
    page.advanced.editors["dpo.beta"].edited.emit("dpo.beta", "0.25")
    assert "dpo.beta=0.25" in stage_state.overrides()
    assert stage_state.resolved_config().dpo.beta == 0.25
    page.stage.combo.setCurrentText("kto")
    assert sections["dpo"].isHidden() and not sections["kto"].isHidden()
    assert not any(o.startswith("dpo.") for o in stage_state.overrides())  # the engine would reject it
    assert stage_state.resolved_config().stage == "kto"


def test_data_that_does_not_fit_the_stage_gets_a_warning_naming_the_stages_that_fit(qtbot, page, stage_state):
    assert page.stage.warning.isHidden()  # nothing inspected yet
    stage_state.set_data_report(report("preference"))
    text = page.stage.warning.text()
    assert not page.stage.warning.isHidden() and "quillon_preference.jsonl" in text and "<b>sft</b>" in text
    assert "Stages that fit this data" in text and all(s in text for s in ("dpo", "orpo", "simpo", "kto", "rm"))
    page.stage.warning.linkActivated.emit("dpo")  # the warning's links switch the stage
    assert stage_state.get("stage") == "dpo" and page.stage.warning.isHidden()
    stage_state.set_data_report(chat_report())
    assert not page.stage.warning.isHidden() and "chat / instruction data" in page.stage.warning.text()
    assert "sft" in page.stage.warning.text()
    stage_state.set_data_report(report("images", stages=[]))  # a kind no stage reads
    assert "No stage of this engine reads it" in page.stage.warning.text()
    stage_state.set_data_report(report("kto"))
    assert "kto" in page.stage.warning.text() and "dpo</a>" not in page.stage.warning.text()
    stage_state.set("stage", "kto")
    assert page.stage.warning.isHidden()


def test_an_engine_without_stages_shows_sft_only(qtbot, state, settings, fake_engine):
    from app.method_page import MethodPage
    from app.stage_info import engine_has_stages

    if engine_has_stages():
        pytest.skip("this engine has stages")
    page = MethodPage(state, settings)
    qtbot.addWidget(page)
    assert page.stage.combo.count() == 1 and not page.stage.combo.isEnabled() and "stage" not in page.editors
    assert not any(o.startswith("stage=") for o in state.overrides())
    state.set_data_report(report("preference", stages=[]))  # (it trains SFT on the chosen answers)
    assert page.stage.warning.isHidden()


def test_a_dpo_preset_under_another_stage_is_explained(qtbot, page, stage_state, tmp_path):
    preset = tmp_path / "dpo.yaml"
    preset.write_text("stage: dpo\ndpo:\n  beta: 0.2\n", encoding="utf-8")
    stage_state.set_preset(str(preset))
    assert page.stage.combo.currentText() == "dpo" and page.preset_note.isHidden()
    page.stage.combo.setCurrentText("simpo")
    assert not page.preset_note.isHidden() and "sets dpo options" in page.preset_note.text()
    assert str(preset) not in page.plan_args()
    page.replan()
    assert page.config_error.isHidden()  # the run config resolves: no dpo.* is passed under simpo
