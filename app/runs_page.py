"""Past runs: status, training stage, progress, loss, date and exports, and what to do next with each.

Runs are found in the default output folder (Settings) and in folders the user
added. Any run can be reopened in the wizard (its config and curve come back),
resumed from its last checkpoint, exported or chatted with.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QColor, QDesktopServices
from PySide6.QtWidgets import (QFileDialog, QHBoxLayout, QHeaderView, QLabel, QPushButton, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

from app.page_header import PageHeader
from app.run_folder import RunSummary, scan_runs

COLUMNS = ("Run", "Status", "Stage", "Steps", "Train loss", "Eval loss", "Date", "Model", "Method", "Exports")
REWARD_MODEL_NOTE = ("A reward model scores answers instead of writing them: score data with "
                     "`engine score RUN --data FILE`; it cannot be chatted with or exported.")
STATUS_COLOURS = {"completed": "#1a7f37", "failed": "#d1242f", "interrupted": "#9a6700"}


class RunsPage(QWidget):
    """A table of run folders with Open / Resume / Export / Chat actions."""

    title = "Runs"
    open_run = Signal(str)
    resume_run = Signal(str)
    export_run = Signal(str)
    chat_run = Signal(str)

    def __init__(self, state, settings, parent=None):
        super().__init__(parent)
        self.state, self.settings = state, settings
        self.runs: list[RunSummary] = []
        lay = QVBoxLayout(self)
        lay.addWidget(PageHeader("Runs", "Every training run in your output folders. Reopen one to see its curve, "
                                 "resume a stopped one, export or chat with a finished one."))
        top = QHBoxLayout()
        self.where = QLabel("")
        self.where.setWordWrap(True)
        top.addWidget(self.where, 1)
        self.add_button = QPushButton("Add folder…")
        self.refresh_button = QPushButton("Refresh")
        top.addWidget(self.add_button)
        top.addWidget(self.refresh_button)
        lay.addLayout(top)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().setVisible(False)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QTableWidget.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        hh = self.table.horizontalHeader()
        for i in range(len(COLUMNS)):
            hh.setSectionResizeMode(i, QHeaderView.ResizeMode.ResizeToContents)
        hh.setSectionResizeMode(len(COLUMNS) - 1, QHeaderView.ResizeMode.Stretch)
        lay.addWidget(self.table, 1)
        self.empty = QLabel("No runs yet. Start with the Model page, or add a folder that holds runs.")
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        lay.addWidget(self.empty)
        actions = QHBoxLayout()
        self.open_button = QPushButton("Open in wizard")
        self.resume_button = QPushButton("Resume")
        self.export_button = QPushButton("Export…")
        self.chat_button = QPushButton("Chat…")
        self.folder_button = QPushButton("Show folder")
        for b in (self.open_button, self.resume_button, self.export_button, self.chat_button, self.folder_button):
            actions.addWidget(b)
        actions.addStretch(1)
        lay.addLayout(actions)

        self.refresh_button.clicked.connect(self.refresh)
        self.add_button.clicked.connect(self._add_folder)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.table.cellDoubleClicked.connect(lambda *_: self._emit(self.open_run))
        self.open_button.clicked.connect(lambda: self._emit(self.open_run))
        self.resume_button.clicked.connect(lambda: self._emit(self.resume_run))
        self.export_button.clicked.connect(lambda: self._emit(self.export_run))
        self.chat_button.clicked.connect(lambda: self._emit(self.chat_run))
        self.folder_button.clicked.connect(
            lambda: self.selected() and QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.selected().path))))
        self.refresh()

    def folders(self) -> list[Path]:
        return [self.settings.runs_dir] + [Path(p) for p in self.settings.extra_run_folders]

    def refresh(self) -> None:
        """Re-scan the folders and redraw the table, keeping the selection."""
        keep = self.selected().path if self.selected() else None
        self.runs = scan_runs(self.folders())
        self.where.setText("Looking in: " + ", ".join(str(f) for f in self.folders()))
        self.table.setRowCount(len(self.runs))
        for row, r in enumerate(self.runs):
            steps = f"{r.step or 0} / {r.total_steps}" if r.total_steps else (str(r.step) if r.step else "—")
            cells = (r.name, r.status + (" (resumable)" if r.resumable else ""), r.stage, steps,
                     f"{r.last_loss:.4f}" if r.last_loss is not None else "—",
                     f"{r.eval_loss:.4f}" if r.eval_loss is not None else "—", r.date, Path(r.model).name or r.model,
                     r.method, ", ".join(p.name for p in r.exports) or "—")
            for col, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(str(r.path) if col == 0 else text)
                if col == 1:
                    item.setForeground(QColor(STATUS_COLOURS.get(r.status, "#6e7781")))
                self.table.setItem(row, col, item)
            if keep is not None and r.path == keep:
                self.table.selectRow(row)
        self.table.setVisible(bool(self.runs))
        self.empty.setVisible(not self.runs)
        self._update_buttons()

    def selected(self) -> RunSummary | None:
        rows = self.table.selectionModel().selectedRows()
        return self.runs[rows[0].row()] if rows and rows[0].row() < len(self.runs) else None

    def select_path(self, path: str | Path) -> None:
        for row, r in enumerate(self.runs):
            if r.path.resolve() == Path(path).resolve():
                self.table.selectRow(row)
                return

    def _emit(self, signal) -> None:
        run = self.selected()
        if run is not None:
            signal.emit(str(run.path))

    def _add_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Folder with runs", self.settings.last_folder("run"))
        if path:
            self.settings.set_last_folder("run", path)
            self.settings.add_run_folder(path)
            self.refresh()

    def _update_buttons(self) -> None:
        r = self.selected()
        self.open_button.setEnabled(r is not None)
        self.folder_button.setEnabled(r is not None)
        self.resume_button.setEnabled(r is not None and r.resumable)
        # a reward model scores answers (`engine score`); the engine refuses to chat with or export it
        generative = r is not None and r.has_adapter and r.stage != "rm"
        self.export_button.setEnabled(generative)
        self.chat_button.setEnabled(generative)
        why = REWARD_MODEL_NOTE if r is not None and r.stage == "rm" else ""
        self.export_button.setToolTip(why)
        self.chat_button.setToolTip(why)
