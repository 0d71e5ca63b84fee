"""The Method page's stage chooser: SFT, DPO, ORPO, SimPO, KTO or a reward model.

A combo bound to the run config's `stage` (so the choice goes into the run's
`key=value` list like every other knob), one line under it saying what the
stage does and which data it needs, and a warning when the data chosen on the
Data page cannot train the chosen stage, naming (as links) the stages that can.
With an engine that has no `stage` option the combo shows "sft", disabled.
"""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QGridLayout, QLabel, QWidget

from app.field_editor import FieldEditor
from app.stage_info import KIND_WORDS, describe, engine_has_stages, report_field, report_stages, stage_names
from engine.config import FIELDS

WARNING_STYLE = "color: #9a6700; font-weight: bold;"


class StageChooser(QWidget):
    """Stage combo + explanation + data mismatch warning, bound to a WizardState."""

    def __init__(self, state, parent=None):
        super().__init__(parent)
        self.state = state
        lay = QGridLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setVerticalSpacing(2)
        self.editor: FieldEditor | None = None
        if engine_has_stages():
            self.editor = FieldEditor(FIELDS["stage"]).bind(state)
            self.combo = self.editor.widget
            field = self.editor
        else:
            self.combo = field = QComboBox()
            self.combo.addItem("sft")
            self.combo.setEnabled(False)
            self.combo.setToolTip("This engine trains with supervised fine-tuning only; a newer edgetune adds "
                                  "DPO, ORPO, SimPO, KTO and reward models.")
        for i in range(self.combo.count()):
            info = describe(self.combo.itemText(i))
            self.combo.setItemData(i, f"{info.explanation} Data: {info.data}.", Qt.ItemDataRole.ToolTipRole)
        label = QLabel("Stage:")
        label.setToolTip(field.toolTip())
        lay.addWidget(label, 0, 0)
        lay.addWidget(field, 0, 1)
        lay.setColumnStretch(1, 1)
        self.explanation = QLabel("")
        self.explanation.setWordWrap(True)
        self.explanation.setStyleSheet("color: palette(placeholder-text);")
        lay.addWidget(self.explanation, 1, 0, 1, 2)
        self.warning = QLabel("")
        self.warning.setWordWrap(True)
        self.warning.setStyleSheet(WARNING_STYLE)
        self.warning.setTextFormat(Qt.TextFormat.RichText)
        self.warning.linkActivated.connect(self.choose)
        self.warning.setVisible(False)
        lay.addWidget(self.warning, 2, 0, 1, 2)
        state.value_changed.connect(lambda key: key == "stage" and self.refresh())
        state.data_report_changed.connect(lambda *_: self.refresh())
        self.refresh()

    def choose(self, stage: str) -> None:
        """Switch to `stage` (the warning's links call this)."""
        if self.editor is not None and stage in stage_names():
            self.state.set("stage", stage)

    def refresh(self) -> None:
        """Explain the chosen stage and check it against the inspected data."""
        stage = self.state.stage()
        info = describe(stage)
        self.explanation.setText(f"{html.escape(info.explanation)} <i>Data:</i> {html.escape(info.data)}.")
        text = mismatch_text(stage, self.state.data_report, linkable=self.editor is not None)
        self.warning.setText(text)
        self.warning.setVisible(bool(text))


def mismatch_text(stage: str, report, linkable: bool = True) -> str:
    """A warning (rich text) when the inspected data cannot train `stage`; '' when it can or nothing is inspected."""
    if report is None:
        return ""
    fits = report_stages(report)
    if stage in fits:
        return ""
    kind = str(report_field(report, "kind", ""))
    name = html.escape(Path(str(report_field(report, "path", ""))).name or "The data")
    what = f"{name} holds {html.escape(KIND_WORDS.get(kind, kind or 'data'))}, which stage <b>{html.escape(stage)}</b> cannot train on."
    if not fits:
        return f"⚠ {what} No stage of this engine reads it: choose other data, or update edgetune."
    names = [f"<a href='{s}'>{s}</a>" if linkable and s in stage_names() else s for s in fits]
    return f"⚠ {what} Stages that fit this data: {', '.join(names)}."
