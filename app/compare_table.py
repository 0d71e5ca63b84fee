"""The Compare view's table: one row per method of a comparison, read from its compare.json.

    table = CompareTable()
    table.show_rows(json.loads(Path("cmp/compare.json").read_text())["rows"])

The cells are the engine's own (engine/compare/table.py `cells`, which compare.md and the
terminal table use too), so the app shows exactly what `engine compare` reports; a failed
or refused method shows its status and reason (full text in the tooltip).
"""

from __future__ import annotations

from PySide6.QtGui import QColor
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

from engine.compare.row import Row
from engine.compare.table import COLUMNS, cells
from engine.errors import EdgetuneError
from engine.train.methods import get_method

HEADERS = ("status",) + COLUMNS
STATUS_COLOURS = {"completed": "#1a7f37", "failed": "#d1242f", "refused": "#9a6700", "running": "#3d7be0"}


def read_rows(data: dict) -> list[Row]:
    """Rows of a compare.json dict (unknown keys of a newer engine are ignored)."""
    return [Row.from_dict(d) for d in (data.get("rows") or []) if isinstance(d, dict) and d.get("method")]


def _group(name: str) -> str:
    try:
        return get_method(name).group
    except EdgetuneError:
        return ""


class CompareTable(QTableWidget):
    """show_rows(rows as dicts or Rows, order=methods, running=NAME) / rows() / cell_text(method, column)."""

    def __init__(self, parent=None):
        super().__init__(0, len(HEADERS), parent)
        self.setHorizontalHeaderLabels([h[:1].upper() + h[1:] for h in HEADERS])
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setAlternatingRowColors(True)
        self.verticalHeader().setVisible(False)
        self.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.horizontalHeader().setStretchLastSection(True)
        self._rows: list[Row] = []

    def rows(self) -> list[Row]:
        """The measured rows shown last (from compare.json)."""
        return list(self._rows)

    def show_rows(self, rows, order: tuple = (), running: str = "") -> None:
        """Fill the table: the methods of `order` (measured, running now, or still to run), then any other measured."""
        self._rows = [r if isinstance(r, Row) else Row.from_dict(r) for r in rows]
        measured = {r.method: r for r in self._rows}
        names = list(order) + [m for m in measured if m not in order]
        shown = []
        for name in names:
            row = measured.get(name)
            if name == running or row is None:
                row = Row(name, _group(name), status="running" if name == running else "pending")
            shown.append(row)
        self.setRowCount(len(shown))
        for i, row in enumerate(shown):
            values = [row.status] + [str(c) for c in cells(row)]
            if row.status in ("running", "pending"):
                values = [row.status, row.method, row.group] + [""] * (len(HEADERS) - 3)
            for j, text in enumerate(values):
                item = QTableWidgetItem(text)
                if row.error:
                    item.setToolTip(row.error)
                if j == 0 and row.status in STATUS_COLOURS:
                    item.setForeground(QColor(STATUS_COLOURS[row.status]))
                if row.status == "pending":
                    item.setForeground(QColor("#8c959f"))
                self.setItem(i, j, item)

    def cell_text(self, method: str, column: str) -> str:
        """The text shown for `method` under `column` (a HEADERS name); '' when absent."""
        j = HEADERS.index(column)
        for i in range(self.rowCount()):
            if self.item(i, 1) is not None and self.item(i, 1).text() == method:
                return self.item(i, j).text()
        return ""
