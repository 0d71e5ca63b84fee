"""The "will it fit?" panel: verdict, a memory bar, the breakdown and advice from `engine plan --json`."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QHeaderView, QLabel, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from app.memory_bar import MemoryBar

VERDICT_COLOURS = {"fits": "#1a7f37", "tight": "#9a6700", "does not fit": "#d1242f"}


def _gb(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def plan_parts(plan: dict) -> list[tuple[str, float, str]]:
    """(term, GB, where it comes from) from `engine plan --json`: its breakdown and notes."""
    notes = plan.get("notes") or {}
    out = []
    for name, value in (plan.get("breakdown") or {}).items():
        gb = _gb(value)
        if gb is not None:
            out.append((str(name), gb, str(notes.get(name, ""))))
    return out


class PlanView(QWidget):
    """show_plan(plan_dict) / show_message(text)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        self.verdict = QLabel("—")
        f = self.verdict.font()
        f.setPointSizeF(f.pointSizeF() * 1.25)
        f.setBold(True)
        self.verdict.setFont(f)
        self.verdict.setWordWrap(True)
        self.bar = MemoryBar()
        self.detail = QLabel("")
        self.detail.setWordWrap(True)
        self.detail.setTextFormat(Qt.TextFormat.RichText)
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["term", "GB", "where it comes from"])
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 6)  # compact rows
        self.table.setWordWrap(False)
        for w in (self.verdict, self.bar, self.detail, self.table):
            lay.addWidget(w)
        self.plan: dict | None = None

    def show_message(self, text: str, colour: str = "") -> None:
        self.plan = None
        self.verdict.setText(text)
        self.verdict.setStyleSheet(f"color: {colour};" if colour else "")
        self.bar.set_parts([], None)
        self.detail.setText("")
        self.table.setRowCount(0)

    def show_plan(self, plan: dict, budget: float | None = None) -> None:
        """Show `engine plan --json` output; `budget` is used when the plan names no memory_gb."""
        self.plan = plan
        budget = _gb(plan.get("memory_gb")) or budget
        total = _gb(plan.get("total_gb"))
        verdict = str(plan.get("verdict") or "")  # fits / tight / does not fit, the planner's call
        parts = plan_parts(plan)
        head = f"{verdict.capitalize()}: " if verdict else ""
        of = f" of {budget:.1f} GB" if budget else ""
        self.verdict.setText(f"{head}{total:.2f} GB planned peak{of}" if total is not None else head or "planned")
        self.verdict.setStyleSheet(f"color: {VERDICT_COLOURS.get(verdict, '')};")
        self.bar.set_parts([(n, g) for n, g, _ in parts], budget)
        advice = plan.get("advice") or []
        advice = [advice] if isinstance(advice, str) else list(advice)
        if plan.get("max_len_that_fits"):
            advice.append(f"longest max_len that fits at this batch size: {plan['max_len_that_fits']:,}")
        self.detail.setText("<br>".join(f"• {a}" for a in advice))
        self.table.setRowCount(len(parts))
        for row, (name, gb, note) in enumerate(parts):
            swatch = QTableWidgetItem(f"■ {name}")
            swatch.setForeground(QColor(self.bar.colour(row)))
            self.table.setItem(row, 0, swatch)
            item = QTableWidgetItem(f"{gb:.3f}")
            item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.table.setItem(row, 1, item)
            self.table.setItem(row, 2, QTableWidgetItem(note))
