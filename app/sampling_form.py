"""Sampling options for the chat columns, generated from the engine's SamplingParams fields."""

from __future__ import annotations

import dataclasses

from PySide6.QtWidgets import QDoubleSpinBox, QHBoxLayout, QLabel, QSpinBox, QWidget

# Display ranges; the engine validates the values itself.
RANGES = {"temperature": (0.0, 2.0, 0.05), "top_p": (0.0, 1.0, 0.05), "repeat_penalty": (0.5, 2.0, 0.05)}


def sampling_fields() -> list:
    """The engine's SamplingParams fields, or [] when engine.chat is not installed."""
    try:
        from engine.chat import SamplingParams
    except ImportError:
        return []
    return list(dataclasses.fields(SamplingParams))


class SamplingForm(QWidget):
    """One spin box per sampling option; `values()` is the dict passed to ChatSession."""

    def __init__(self, parent=None):
        super().__init__(parent)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.editors: dict = {}
        for f in sampling_fields():
            if f.type in (int, "int"):
                ed = QSpinBox()
                ed.setRange(0, 1_000_000)
            else:
                lo, hi, step = RANGES.get(f.name, (0.0, 100.0, 0.1))
                ed = QDoubleSpinBox()
                ed.setRange(lo, hi)
                ed.setSingleStep(step)
                ed.setDecimals(2)
            ed.setValue(f.default)
            ed.setToolTip(f"{f.name} (default {f.default})")
            lay.addWidget(QLabel(f.name.replace("_", " ") + ":"))
            lay.addWidget(ed)
            self.editors[f.name] = ed
        lay.addStretch(1)

    def values(self) -> dict:
        return {name: ed.value() for name, ed in self.editors.items()}
