"""The exporters' verification results (verify.json) as a table: check, result, pass/fail."""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtGui import QColor
from PySide6.QtWidgets import QHeaderView, QTableWidget, QTableWidgetItem


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        return ", ".join(_fmt(x) for x in v[:6]) + (" …" if len(v) > 6 else "")
    if isinstance(v, dict):
        return ", ".join(f"{k}={_fmt(x)}" for k, x in list(v.items())[:6])
    return str(v)


def verify_rows(data, prefix: str = "") -> list[tuple[str, str, object]]:
    """Flatten verify.json to (check, result text, passed True/False/None) rows.

    A check is any mapping with a 'passed'/'ok'/'pass' flag; its other fields are its result.
    Lists of such mappings (one per file or quant type) are named by their 'name'/'quant'/'file'.
    """
    rows: list[tuple[str, str, object]] = []
    if isinstance(data, list):
        for i, item in enumerate(data):
            name = item.get("name") or item.get("quant") or item.get("file") or item.get("check") or str(i) \
                if isinstance(item, dict) else str(i)
            rows += verify_rows(item, f"{prefix}{name}")
        return rows
    if not isinstance(data, dict):
        return [(prefix or "result", _fmt(data), None)]
    flag_key = next((k for k in ("passed", "ok", "pass") if isinstance(data.get(k), bool)), None)
    if flag_key:
        detail = {k: v for k, v in data.items() if k not in (flag_key, "name", "check")}
        return [(prefix or str(data.get("name", "check")), _fmt(detail), data[flag_key])]
    scalars = {k: v for k, v in data.items() if not isinstance(v, (dict, list))}
    nested = {k: v for k, v in data.items() if isinstance(v, (dict, list))}
    if scalars and prefix:
        rows.append((prefix, _fmt(scalars), None))
    elif scalars:
        for k, v in scalars.items():
            rows.append((k, _fmt(v), None))
    for k, v in nested.items():
        rows += verify_rows(v, f"{prefix}.{k}" if prefix else k)
    return rows


class VerifyTable(QTableWidget):
    """load(path_to_verify_json) or show_rows(rows)."""

    def __init__(self, parent=None):
        super().__init__(0, 3, parent)
        self.setHorizontalHeaderLabels(["check", "result", ""])
        self.verticalHeader().setVisible(False)
        self.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        hh = self.horizontalHeader()
        hh.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        hh.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        hh.setSectionResizeMode(2, QHeaderView.ResizeMode.ResizeToContents)
        self.rows: list = []

    def load(self, path: Path, label: str = "") -> None:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        self.add_rows(verify_rows(data, label))

    def clear_rows(self) -> None:
        self.rows = []
        self.setRowCount(0)

    def add_rows(self, rows: list) -> None:
        for name, result, passed in rows:
            r = self.rowCount()
            self.insertRow(r)
            self.setItem(r, 0, QTableWidgetItem(name))
            item = QTableWidgetItem(result)
            item.setToolTip(result)
            self.setItem(r, 1, item)
            mark = QTableWidgetItem("" if passed is None else ("✔ pass" if passed else "✘ fail"))
            if passed is not None:
                mark.setForeground(QColor("#1a7f37" if passed else "#d1242f"))
            self.setItem(r, 2, mark)
        self.rows += rows
