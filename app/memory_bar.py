"""A stacked horizontal bar: where the planned memory goes, against what the device has."""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

COLOURS = ["#3d7be0", "#8250df", "#1a7f37", "#bf8700", "#cf222e", "#0f9fb0", "#6e7781", "#e16f24"]


class MemoryBar(QWidget):
    """set_parts([(name, gb), ...], budget_gb): each part a coloured segment, the budget a line."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.parts: list[tuple[str, float]] = []
        self.budget: float | None = None
        self.setMinimumHeight(28)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def set_parts(self, parts: list[tuple[str, float]], budget: float | None) -> None:
        self.parts = [(n, max(0.0, float(g))) for n, g in parts]
        self.budget = budget
        tip = "<br>".join(f"<span style='color:{COLOURS[i % len(COLOURS)]}'>■</span> {n}: {g:.2f} GB"
                          for i, (n, g) in enumerate(self.parts))
        self.setToolTip(tip)
        self.update()

    def colour(self, index: int) -> str:
        return COLOURS[index % len(COLOURS)]

    def paintEvent(self, event) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        r = QRectF(self.rect()).adjusted(1, 4, -1, -4)
        p.setPen(QPen(self.palette().mid().color()))
        p.setBrush(self.palette().base())
        p.drawRoundedRect(r, 4, 4)
        total = sum(g for _, g in self.parts)
        scale = max(total, self.budget or 0.0) or 1.0
        x = r.left()
        for i, (_, gb) in enumerate(self.parts):
            w = r.width() * gb / scale
            p.fillRect(QRectF(x, r.top() + 1, w, r.height() - 2), QColor(self.colour(i)))
            x += w
        if self.budget:
            bx = r.left() + r.width() * self.budget / scale
            p.setPen(QPen(QColor("#d1242f" if total > self.budget else self.palette().text().color()), 2, Qt.PenStyle.DashLine))
            p.drawLine(int(bx), int(r.top() - 3), int(bx), int(r.bottom() + 3))
        p.end()
