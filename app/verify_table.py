"""The exporters' verification (verify.json) as a table: one row per exported file.

verify.json holds {"files": {name: report}} where a report carries the checks
the exporter ran: token ids equal to the HF tokenizer's, logits NMSE / top-1 /
KL against the HF model, and whether generation stops at the end-of-turn token.
Columns are the report fields; a field an exporter does not write shows '-'.
"""

from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtGui import QColor
from PySide6.QtWidgets import QHeaderView, QTableWidget, QTableWidgetItem

COLUMNS = ("file", "type", "size", "tokens equal", "NMSE", "top-1", "KL", "stops at EOT", "result")


def _pct(v) -> str:
    return "-" if v is None else f"{v:.1%}"


def _sci(v) -> str:
    return "-" if v is None else f"{v:.2e}"


def report_row(name: str, r: dict, size_bytes: int | None = None) -> tuple[list[str], object, str]:
    """Cells, passed (True/False/None) and a tooltip (the problems) for one file's report.

    Reads the GGUF exporter's per-file report (tokens_checked, nmse, kl_mean, stop_check,
    problems) and the ONNX exporter's (summary.nmse/top1/kl, tokenizer_ok, free_run_stops
    "n/m", failures).
    """
    r = {**(r.get("summary") or {}), **r}
    size = r.get("size_bytes", size_bytes)
    checked, matching = r.get("tokens_checked"), r.get("tokens_matching")
    if not checked and r.get("tokenizer_ok") is not None:
        checked, matching = 1, int(bool(r["tokenizer_ok"]))
    stops = r.get("stop_check") or r.get("free_run_stops")
    if stops is None and r.get("gguf_stops", r.get("stops")) is not None:
        stops = "pass" if r.get("gguf_stops", r.get("stops")) else "fail"
    if r.get("kl_mean") is None and isinstance(r.get("kl"), (int, float)):
        r["kl_mean"] = r["kl"]
    passed = r.get("passed", r.get("ok"))
    cells = [name, str(r.get("type") or r.get("precision") or "-"),
             "-" if size is None else f"{size / 1e6:.1f} MB",
             "-" if not checked else ("yes" if checked == matching else "NO") if r.get("tokenizer_ok") is not None
             else f"{matching}/{checked}",
             _sci(r.get("nmse")), _pct(r.get("top1")),
             "-" if r.get("kl_mean") is None else f"{r['kl_mean']:.4f}",
             {"pass": "yes", "fail": "NO"}.get(str(stops), str(stops or "n/a")),
             "-" if passed is None else ("✔ pass" if passed else "✘ FAIL")]
    problems = r.get("problems") or r.get("failures") or []
    tip = "\n".join(str(p) for p in problems) or (f"reply: {r['reply']!r}" if r.get("reply") else "")
    if r.get("vision_nmse") is not None:  # an ONNX VLM export: its image checks
        from exporters.onnx.verify_vlm import image_checks_text

        tip = "\n".join(filter(None, [tip, image_checks_text(r)]))
    return cells, passed, tip


def verify_rows(data: dict, label: str = "", size_bytes: int | None = None) -> list[tuple[list[str], object, str]]:
    """All rows of one verify.json (its "files" mapping, or the whole file as one report)."""
    folder = label.rstrip(": ")

    def named(name) -> str:  # "onnx-int4/verify.json" naming "onnx-int4" needs no prefix
        return str(name) if not folder or str(name).startswith(folder) else f"{folder}/{name}"

    files = data.get("files") if isinstance(data, dict) else None
    if isinstance(files, dict):
        return [report_row(named(name), r) for name, r in files.items() if isinstance(r, dict)]
    if isinstance(files, list):
        return [report_row(named(r.get("file", i)), r) for i, r in enumerate(files) if isinstance(r, dict)]
    return [report_row(label.rstrip(": ") or "export", data, size_bytes)] if isinstance(data, dict) else []


class VerifyTable(QTableWidget):
    """load(verify.json) appends its rows; clear_rows() empties the table."""

    def __init__(self, parent=None):
        super().__init__(0, len(COLUMNS), parent)
        self.setHorizontalHeaderLabels(COLUMNS)
        self.verticalHeader().setVisible(False)
        self.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        hh = self.horizontalHeader()
        for i in range(len(COLUMNS)):
            hh.setSectionResizeMode(i, QHeaderView.ResizeMode.ResizeToContents)
        hh.setStretchLastSection(True)
        self.rows: list = []

    def load(self, path: Path, label: str = "", size_bytes: int | None = None) -> None:
        self.add_rows(verify_rows(json.loads(Path(path).read_text(encoding="utf-8")), label, size_bytes))

    def clear_rows(self) -> None:
        self.rows = []
        self.setRowCount(0)

    def add_rows(self, rows: list) -> None:
        for cells, passed, tip in rows:
            r = self.rowCount()
            self.insertRow(r)
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if tip:
                    item.setToolTip(tip)
                if c == len(cells) - 1 and passed is not None:
                    item.setForeground(QColor("#1a7f37" if passed else "#d1242f"))
                self.setItem(r, c, item)
        self.rows += rows
