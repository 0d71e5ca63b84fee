"""The Train page's view of what an online-RL policy is actually saying: recent sampled answers and their rewards.

`completions` events (stage=grpo/rloo, engine/train/rl_events.py) carry a few sampled answers per
logging step; this table shows the newest ones, one row per answer, with each reward's score, so a
reward that is being gamed (empty answers, repeated words) is visible while the run goes.
"""

from __future__ import annotations

from PySide6.QtWidgets import QHeaderView, QTableWidget, QTableWidgetItem

MAX_ROWS = 24  # newest answers kept on screen


class CompletionsView(QTableWidget):
    """add_event(ev) with a `completions` event; clear_rows() for a new run."""

    def __init__(self, parent=None):
        super().__init__(0, 4, parent)
        self.setHorizontalHeaderLabels(["step", "prompt", "answer", "rewards"])
        self.horizontalHeader().setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        self.verticalHeader().setVisible(False)
        self.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.setWordWrap(True)
        self.setMinimumHeight(140)
        self.setToolTip("Answers the policy sampled at the latest logging steps, with the score of every reward")

    def clear_rows(self) -> None:
        self.setRowCount(0)

    def add_event(self, ev: dict) -> None:
        """Prepend the event's samples (newest on top), keeping MAX_ROWS rows."""
        step = str(ev.get("step", ""))
        for sample in reversed(ev.get("samples") or []):
            if not isinstance(sample, dict):
                continue
            rewards = sample.get("rewards") or {}
            cells = [step, str(sample.get("prompt", "")), str(sample.get("completion", "")).strip(),
                     "  ".join(f"{k} {v:.2f}" for k, v in rewards.items() if isinstance(v, (int, float)))]
            self.insertRow(0)
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(text)
                self.setItem(0, col, item)
        while self.rowCount() > MAX_ROWS:
            self.removeRow(self.rowCount() - 1)
