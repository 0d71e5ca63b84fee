"""The "will it fit?" panel: verdict, a memory bar, the breakdown and advice from `engine plan --json`."""

from __future__ import annotations

import html

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QLabel, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from app.memory_bar import MemoryBar

VERDICT_COLOURS = {"fits": "#1a7f37", "tight": "#9a6700", "does not fit": "#d1242f"}
VERDICT_WORDS = {"fits": "Fits", "tight": "Fits, but tight", "does not fit": "Does not fit"}


def _gb(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _params(n) -> str:
    n = int(n or 0)
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M"


def plan_parts(plan: dict) -> list[tuple[str, float, str]]:
    """(term, GB, where it comes from) from `engine plan --json`: its breakdown and notes."""
    notes = plan.get("notes") or {}
    out = []
    for name, value in (plan.get("breakdown") or {}).items():
        gb = _gb(value)
        if gb is not None:
            out.append((str(name), gb, str(notes.get(name, ""))))
    return out


def run_line(plan: dict) -> str:
    """What the plan assumes, with 'auto' resolved: the same facts as the text report's header."""
    if not plan.get("method"):
        return ""
    ckpt = "on" if plan.get("gradient_checkpointing") else "off"
    return (f"{plan['method']} on {plan.get('model', '?')} ({_params(plan.get('total_params'))} params, "
            f"{_params(plan.get('trainable_params'))} trainable), {plan.get('compute_dtype', '?')} compute, "
            f"backend {plan.get('backend', '?')}; micro-batch {plan.get('batch_size')} × grad accum "
            f"{plan.get('grad_accum')}, max_len {plan.get('max_len')}, gradient checkpointing {ckpt}"
            + vision_line(plan.get("vision")))


def vision_line(vision) -> str:
    """A VLM's parts (engine/plan/vision_shape.py) after the run line; '' for a text model."""
    if not isinstance(vision, dict) or not vision:
        return ""
    return (f"; vision encoder {_params(vision.get('encoder_params'))} + projector {_params(vision.get('projector_params'))}"
            f" ({' and '.join(vision.get('trains') or []) or 'frozen'}), LM {_params(vision.get('language_params'))}, "
            f"{vision.get('tokens_per_image')} image tokens per image (inside max_len)")


def advice_html(plan: dict) -> str:
    """The planner's advice as a list; its 'set key=value' lines are steps of the line before them."""
    advice = plan.get("advice") or []
    lines = [advice] if isinstance(advice, str) else [str(a) for a in advice]
    n = plan.get("max_len_that_fits")
    if isinstance(n, int) and n > 0 and plan.get("max_len") and n != plan.get("max_len"):
        lines.append(f"longest max_len that fits at micro-batch 1 with gradient checkpointing: {n:,}")
    elif n == 0 and plan.get("verdict") == "does not fit":
        lines.append("even micro-batch 1 at max_len 128 with gradient checkpointing does not fit")
    out = []
    for line in lines:
        step = line.startswith("set ")
        out.append(("&nbsp;&nbsp;&nbsp;&nbsp;→ " if step else "• ") + html.escape(line))
    return "<br>".join(out)


class PlanView(QWidget):
    """show_plan(plan_dict) / show_message(text)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setSpacing(4)
        self.verdict = QLabel("—")
        f = self.verdict.font()
        f.setPointSizeF(f.pointSizeF() * 1.25)
        f.setBold(True)
        self.verdict.setFont(f)
        self.verdict.setWordWrap(True)
        self.bar = MemoryBar()
        self.run = QLabel("")
        self.run.setWordWrap(True)
        self.run.setStyleSheet("color: palette(placeholder-text);")
        self.detail = QLabel("")
        self.detail.setWordWrap(True)
        self.detail.setTextFormat(Qt.TextFormat.RichText)
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["term", "GB", "where it comes from"])
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        header.setDefaultAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.table.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.table.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 6)  # compact rows
        # every term is shown at once (no scrolling); long notes are elided, the full text is the tooltip
        self.table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        for w in (self.verdict, self.bar, self.run, self.detail, self.table):
            lay.addWidget(w)
        lay.addStretch(1)
        self.plan: dict | None = None
        self._fit_table()

    def _fit_table(self) -> None:
        rows = max(1, self.table.rowCount())
        height = (self.table.horizontalHeader().sizeHint().height() + rows * self.table.verticalHeader().defaultSectionSize()
                  + 2 * self.table.frameWidth())
        self.table.setFixedHeight(height)

    def show_message(self, text: str, colour: str = "") -> None:
        self.plan = None
        self.verdict.setText(text)
        self.verdict.setStyleSheet(f"color: {colour};" if colour else "")
        self.bar.set_parts([], None)
        self.run.setText("")
        self.detail.setText("")
        self.table.setRowCount(0)
        self._fit_table()

    def show_plan(self, plan: dict, budget: float | None = None) -> None:
        """Show `engine plan --json` output; `budget` is used when the plan names no memory_gb."""
        self.plan = plan
        budget = _gb(plan.get("memory_gb")) or budget
        total = _gb(plan.get("total_gb"))
        verdict = str(plan.get("verdict") or "")  # fits / tight / does not fit, the planner's call
        parts = plan_parts(plan)
        head = f"{VERDICT_WORDS.get(verdict, verdict.capitalize())}: " if verdict else ""
        of = f" of {budget:.1f} GB" if budget else ""
        self.verdict.setText(f"{head}{total:.2f} GB planned peak{of}" if total is not None else head or "planned")
        self.verdict.setStyleSheet(f"color: {VERDICT_COLOURS.get(verdict, '')};")
        self.bar.set_parts([(n, g) for n, g, _ in parts], budget)
        self.run.setText(run_line(plan))
        self.detail.setText(advice_html(plan))
        self.table.setRowCount(len(parts))
        for row, (name, gb, note) in enumerate(parts):
            swatch = QTableWidgetItem(f"■ {name}")
            swatch.setForeground(QColor(self.bar.colour(row)))
            self.table.setItem(row, 0, swatch)
            item = QTableWidgetItem(f"{gb:.3f}")
            item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.table.setItem(row, 1, item)
            where = QTableWidgetItem(note)
            where.setToolTip(note)
            self.table.setItem(row, 2, where)
        self._fit_table()
