"""A preference pair as training sees it: the prompt on top, the chosen and the rejected answer side by side.

The engine's inspection gives the pair as text with the trained tokens marked
`[[like this]]` (the prompt is masked: it carries no loss in either answer).
A KTO record has one answer and a thumbs-up/down label; it is shown on the side
its label puts it, the other side hidden.
"""

from __future__ import annotations

import re

from PySide6.QtWidgets import QGridLayout, QLabel, QWidget

from app.masked_sample_view import MaskedSampleView

CHOSEN_STYLE = "background-color:#1a7f37; color:white; font-weight:bold; padding:2px 6px;"
REJECTED_STYLE = "background-color:#cf222e; color:white; font-weight:bold; padding:2px 6px;"
PROMPT_STYLE = "font-weight:bold; padding:2px 0px;"

_MARK = re.compile(r"\[\[(.*?)\]\]", re.S)


def marked_segments(text: str) -> list[tuple[bool, str]]:
    """'a [[b]] c' -> [(False, 'a '), (True, 'b'), (False, ' c')]: the engine's [[trained]] marks as segments."""
    out, pos = [], 0
    for m in _MARK.finditer(text or ""):
        if m.start() > pos:
            out.append((False, text[pos:m.start()]))
        out.append((True, m.group(1)))
        pos = m.end()
    if pos < len(text or ""):
        out.append((False, text[pos:]))
    return out


class PairView(QWidget):
    """show_pair({'prompt', 'chosen', 'rejected'}) or a KTO record ({'prompt', 'chosen' or 'rejected', 'label'})."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.pair: dict = {}
        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setVerticalSpacing(2)
        self.prompt_header = QLabel("Prompt (shared by both answers, masked)")
        self.prompt_header.setStyleSheet(PROMPT_STYLE)
        self.prompt = MaskedSampleView()
        self.chosen_header = QLabel("✓ chosen")
        self.chosen_header.setStyleSheet(CHOSEN_STYLE)
        self.chosen = MaskedSampleView()
        self.rejected_header = QLabel("✗ rejected")
        self.rejected_header.setStyleSheet(REJECTED_STYLE)
        self.rejected = MaskedSampleView()
        grid.addWidget(self.prompt_header, 0, 0, 1, 2)
        grid.addWidget(self.prompt, 1, 0, 1, 2)
        grid.addWidget(self.chosen_header, 2, 0)
        grid.addWidget(self.rejected_header, 2, 1)
        grid.addWidget(self.chosen, 3, 0)
        grid.addWidget(self.rejected, 3, 1)
        grid.setRowStretch(1, 3)  # the prompt (system + user turns) is the longer text
        grid.setRowStretch(3, 2)
        grid.setColumnStretch(0, 1)
        grid.setColumnStretch(1, 1)

    def show_pair(self, pair: dict) -> None:
        """Show a pair (or a KTO record) from the engine's inspection."""
        self.pair = dict(pair or {})
        self.prompt.show_segments(marked_segments(str(self.pair.get("prompt", ""))))
        kto = "label" in self.pair
        self.prompt_header.setText("Prompt (masked)" if kto else "Prompt (shared by both answers, masked)")
        self.chosen_header.setText("✓ desirable (label: true)" if kto else "✓ chosen")
        self.rejected_header.setText("✗ undesirable (label: false)" if kto else "✗ rejected")
        for side, header, view in (("chosen", self.chosen_header, self.chosen),
                                   ("rejected", self.rejected_header, self.rejected)):
            present = side in self.pair and self.pair[side] is not None
            view.show_segments(marked_segments(str(self.pair.get(side) or "")))
            header.setVisible(present or not kto)
            view.setVisible(present or not kto)
