"""One form field for one run-config option, built from the option's type, choices and help.

    editor = FieldEditor(FIELDS["optim.lr"])
    editor.text()            # '0.0002' -- what `key=text` passes to the engine
    editor.edited.connect(...)

The widget kind follows the field: a choice list -> combo box, bool -> check box,
int -> spin box, "int or 'auto'" -> editable combo, lists/dicts -> a YAML line.
The tooltip is the field's help text from engine/config/schema.py, so the form
documents itself and never drifts from the engine.
"""

from __future__ import annotations

import typing

from PySide6.QtCore import Signal
from PySide6.QtGui import QDoubleValidator
from PySide6.QtWidgets import QCheckBox, QComboBox, QHBoxLayout, QLineEdit, QSpinBox, QWidget

from engine.config.loader import FieldInfo

INT_MAX = 2**31 - 1


def _args(tp) -> tuple:
    return typing.get_args(tp) if typing.get_origin(tp) is typing.Union else ()


def field_kind(info: FieldInfo) -> str:
    """choice | bool | int | float | auto | text | yaml -- which widget the field gets."""
    tp = info.type
    if info.choices:
        return "choice"
    args = _args(tp)
    if any(typing.get_origin(a) is typing.Literal for a in args):
        return "auto"  # e.g. batch_size: int | 'auto'
    if tp is bool:
        return "bool"
    if tp is int:
        return "int"
    if tp is float:
        return "float"
    if tp in (list, dict) or any(a in (list, dict) for a in args):
        return "yaml"
    return "text"


def short_label(key: str) -> str:
    """'optim.warmup_ratio' -> 'Warmup ratio'."""
    name = key.rsplit(".", 1)[-1].replace("_", " ")
    return name[:1].upper() + name[1:]


class FieldEditor(QWidget):
    """Edits one config key as text; emits `edited(key, text)` when the user changes it."""

    edited = Signal(str, str)

    def __init__(self, info: FieldInfo, parent=None):
        super().__init__(parent)
        self.info = info
        self.key = info.key
        self.kind = field_kind(info)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.widget = self._build()
        lay.addWidget(self.widget)
        self.setToolTip(f"<b>{info.key}</b><br>{info.help}")
        self.widget.setToolTip(self.toolTip())
        self.setObjectName(f"field:{info.key}")

    def _build(self) -> QWidget:
        info = self.info
        if self.kind == "choice":
            w = QComboBox()
            w.addItems([str(c) for c in info.choices])
            w.currentTextChanged.connect(self._emit)
        elif self.kind == "auto":
            w = QComboBox()
            w.setEditable(True)
            bool_part = any(a is bool for a in _args(info.type))
            words = [str(v) for a in _args(info.type) if typing.get_origin(a) is typing.Literal
                     for v in typing.get_args(a) if v != "auto"]  # e.g. gradient_checkpointing's 'offload'
            w.addItems((["auto", "true", "false"] if bool_part else ["auto", "1", "2", "4", "8", "16", "32"]) + words)
            w.currentTextChanged.connect(self._emit)
        elif self.kind == "bool":
            w = QCheckBox()
            w.toggled.connect(self._emit)
        elif self.kind == "int":
            w = QSpinBox()
            w.setRange(-1, INT_MAX)
            w.setMinimumWidth(110)
            w.valueChanged.connect(self._emit)
        else:
            w = QLineEdit()
            if self.kind == "float":
                v = QDoubleValidator()
                v.setNotation(QDoubleValidator.Notation.ScientificNotation)
                w.setValidator(v)
            if self.kind == "yaml":
                w.setPlaceholderText("YAML, e.g. [q_proj, v_proj] or {text: body}")
            elif info.default is None:
                w.setPlaceholderText("(not set)")
            w.textEdited.connect(self._emit)
        return w

    def _emit(self, *_):
        self.edited.emit(self.key, self.text())

    def text(self) -> str:
        w = self.widget
        if isinstance(w, QComboBox):
            return w.currentText().strip()
        if isinstance(w, QCheckBox):
            return "true" if w.isChecked() else "false"
        if isinstance(w, QSpinBox):
            return str(w.value())
        return w.text().strip()

    def set_text(self, text: str) -> None:
        """Show `text` without emitting `edited` (the change came from the state, not the user)."""
        w = self.widget
        w.blockSignals(True)
        try:
            if isinstance(w, QComboBox):
                if w.findText(text) < 0 and w.isEditable():
                    w.addItem(text)
                w.setCurrentText(text)
            elif isinstance(w, QCheckBox):
                w.setChecked(text == "true")
            elif isinstance(w, QSpinBox):
                w.setValue(int(text or 0))
            elif w.text() != text:
                w.setText(text)
        finally:
            w.blockSignals(False)

    def bind(self, state) -> "FieldEditor":
        """Two-way binding to a WizardState: edits go to the state, state changes come back."""
        self.set_text(state.get(self.key))
        self.edited.connect(state.set)
        state.value_changed.connect(lambda key: key == self.key and self.set_text(state.get(key)))
        return self
