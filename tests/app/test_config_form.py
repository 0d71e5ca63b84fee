"""The Advanced panel and the main knobs are generated from the run config, tooltips included."""

from __future__ import annotations

from app.config_form import ConfigForm
from app.field_editor import FieldEditor, field_kind
from engine.config import FIELDS, iter_fields


def test_every_option_gets_an_editor_with_its_help(qtbot, state):
    form = ConfigForm(state)
    qtbot.addWidget(form)
    assert set(form.editors) == set(FIELDS)
    for key, ed in form.editors.items():
        assert FIELDS[key].help and FIELDS[key].help in ed.toolTip()
        assert ed.text() == state.get(key), key


def test_widget_kinds_follow_the_field_types():
    kinds = {f.key: field_kind(f) for f in iter_fields()}
    assert kinds["method"] == "choice" and kinds["lora.rslora"] == "bool" and kinds["lora.r"] == "int"
    assert kinds["optim.lr"] == "float" and kinds["optim.batch_size"] == "auto"
    assert kinds["train.gradient_checkpointing"] == "auto" and kinds["lora.target_modules"] == "yaml"
    assert kinds["data.columns"] == "yaml" and kinds["model.revision"] == "text"


def test_edits_reach_the_state_and_state_changes_reach_the_form(qtbot, state):
    form = ConfigForm(state, exclude=("data.path",))
    qtbot.addWidget(form)
    assert "data.path" not in form.editors
    form.editors["lora.rslora"].widget.setChecked(True)
    assert state.get("lora.rslora") == "true"
    form.editors["optim.batch_size"].widget.setCurrentText("auto")
    assert state.get("optim.batch_size") == "auto"
    form.editors["optim.scheduler"].widget.setCurrentText("linear")
    cfg = state.resolved_config()
    assert cfg.lora.rslora is True and cfg.optim.batch_size == "auto" and cfg.optim.scheduler == "linear"
    state.set("train.save_steps", "25")
    assert form.editors["train.save_steps"].widget.value() == 25


def test_editor_text_round_trip(qtbot):
    for info in iter_fields():
        ed = FieldEditor(info)
        qtbot.addWidget(ed)
        from app.wizard_state import format_value

        ed.set_text(format_value(info.default))
        assert ed.text() == format_value(info.default), info.key


def test_gradient_checkpointing_offers_offload(qtbot, state):
    form = ConfigForm(state)
    qtbot.addWidget(form)
    combo = form.editors["train.gradient_checkpointing"].widget
    assert [combo.itemText(i) for i in range(combo.count())] == ["auto", "true", "false", "offload"]
    combo.setCurrentText("offload")
    assert state.resolved_config().train.gradient_checkpointing == "offload"
