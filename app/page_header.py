"""The title and one-line explanation at the top of every wizard page."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget


class PageHeader(QWidget):
    """A bold title over a wrapped, muted explanation."""

    def __init__(self, title: str, text: str, parent=None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 6)
        self.title = QLabel(title)
        f = self.title.font()
        f.setPointSizeF(f.pointSizeF() * 1.5)
        f.setBold(True)
        self.title.setFont(f)
        self.text = QLabel(text)
        self.text.setWordWrap(True)
        self.text.setStyleSheet("color: palette(placeholder-text);")
        lay.addWidget(self.title)
        lay.addWidget(self.text)
