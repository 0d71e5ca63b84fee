"""The Advanced panel: a form for every run-config option, generated from the config itself.

One group per config section (model, data, sequence, quant, lora, optim, train,
export), one FieldEditor per option, labels from the key and tooltips from the
help text. Options that another page already shows are left out (`exclude`) so
no option has two widgets. Adding a field to RunConfig adds it here, with no
change to the app. A training stage's own section (dpo, kto, rm, ...) is shown
only while that stage is chosen: its options mean nothing to the other stages
(and the wizard does not pass them on, see WizardState.overrides).
"""

from __future__ import annotations

import dataclasses

from PySide6.QtWidgets import QFormLayout, QGroupBox, QLabel, QScrollArea, QVBoxLayout, QWidget

from app.field_editor import FieldEditor, short_label
from app.stage_info import section_stages
from engine.config import FIELDS, RunConfig


def section_help() -> dict[str, str]:
    """Section name -> its help text (the metadata on RunConfig's section fields)."""
    return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(RunConfig)}


class ConfigForm(QScrollArea):
    """Every config option not in `exclude`, grouped by section and bound to the wizard state."""

    def __init__(self, state, exclude: tuple = (), parent=None):
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.state = state
        self.editors: dict[str, FieldEditor] = {}
        self.sections: dict[str, QGroupBox] = {}
        body = QWidget()
        outer = QVBoxLayout(body)
        groups: dict[str, QFormLayout] = {}
        helps = section_help()
        for info in FIELDS.values():  # (declaration order)
            if info.key in exclude:
                continue
            section = info.key.split(".")[0] if "." in info.key else "run"
            if section not in groups:
                title = f"{section} — {helps[section].rstrip('.')}" if helps.get(section) else section
                box = QGroupBox(title)
                box.setObjectName(f"section:{section}")
                form = QFormLayout(box)
                form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.ExpandingFieldsGrow)
                groups[section] = form
                self.sections[section] = box
                outer.addWidget(box)
            editor = FieldEditor(info).bind(state)
            label = QLabel(short_label(info.key))
            label.setToolTip(editor.toolTip())
            groups[section].addRow(label, editor)
            self.editors[info.key] = editor
        outer.addStretch(1)
        self.setWidget(body)
        state.value_changed.connect(lambda key: key == "stage" and self.show_stage_sections())
        self.show_stage_sections()

    def show_stage_sections(self) -> None:
        """Show the chosen stage's own section, hide the other stages' sections."""
        stage = self.state.stage()
        for section, box in self.sections.items():
            owners = section_stages(section)
            box.setVisible(not owners or stage in owners)
