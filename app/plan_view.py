"""The "will it fit?" panel: verdict, a memory bar and the breakdown from `engine plan --json`."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHeaderView, QLabel, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from app.memory_bar import MemoryBar

VERDICT_COLOURS = {"fits": "#1a7f37", "tight": "#9a6700", "does not fit": "#d1242f"}


def _gb(value) -> float | None:
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, dict):
        for key in ("gb", "total_gb", "value"):
            if isinstance(value.get(key), (int, float)):
                return float(value[key])
    return None


def plan_parts(plan: dict) -> list[tuple[str, float, str]]:
    """(name, GB, note) per breakdown term, from a dict {name: gb | {gb, note}} or a list of {name, gb}."""
    raw = plan.get("breakdown") or plan.get("terms") or {}
    items = raw.items() if isinstance(raw, dict) else ((r.get("name") or r.get("label"), r) for r in raw)
    out = []
    for name, value in items:
        gb = _gb(value)
        if gb is None:
            continue
        note = value.get("note") or value.get("detail") or value.get("why") or "" if isinstance(value, dict) else ""
        out.append((str(name).replace("_", " "), gb, str(note)))
    return out


def plan_verdict(plan: dict, budget: float | None) -> str:
    """The planner's verdict, or one from total vs budget when it gives none."""
    verdict = str(plan.get("verdict") or "").lower().replace("_", " ")
    if verdict:
        return verdict
    total = _gb(plan.get("total_gb"))
    if total is None or not budget:
        return ""
    return "fits" if total <= 0.85 * budget else "tight" if total <= budget else "does not fit"


class PlanView(QWidget):
    """show_plan(plan_dict, budget_gb) / show_message(text)."""

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
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["term", "GB", "where it comes from"])
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
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

    def show_plan(self, plan: dict, budget: float | None) -> None:
        self.plan = plan
        budget = _gb(plan.get("budget_gb")) or _gb(plan.get("available_gb")) or _gb(plan.get("vram_gb")) or budget
        total = _gb(plan.get("total_gb"))
        verdict = plan_verdict(plan, budget)
        parts = plan_parts(plan)
        head = f"{verdict.capitalize()}: " if verdict else ""
        of = f" of {budget:.1f} GB" if budget else ""
        self.verdict.setText(f"{head}{total:.2f} GB planned peak{of}" if total is not None else head or "planned")
        self.verdict.setStyleSheet(f"color: {VERDICT_COLOURS.get(verdict, '')};")
        self.bar.set_parts([(n, g) for n, g, _ in parts], budget)
        hints = []
        for key, label in (("max_batch_size", "largest micro-batch that fits"), ("max_micro_batch", "largest micro-batch that fits"),
                           ("max_len", "longest sequence that fits"), ("max_seq_len", "longest sequence that fits")):
            if plan.get(key) is not None:
                hints.append(f"{label}: {plan[key]}")
        for key in ("advice", "suggestion", "hint", "note"):
            if plan.get(key):
                hints.append(str(plan[key]))
        self.detail.setText(" · ".join(hints))
        self.table.setRowCount(len(parts))
        for row, (name, gb, note) in enumerate(parts):
            swatch = QTableWidgetItem(f"■ {name}")
            swatch.setForeground(self.bar.palette().text())
            from PySide6.QtGui import QColor

            swatch.setForeground(QColor(self.bar.colour(row)))
            self.table.setItem(row, 0, swatch)
            item = QTableWidgetItem(f"{gb:.3f}")
            item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.table.setItem(row, 1, item)
            self.table.setItem(row, 2, QTableWidgetItem(note))
