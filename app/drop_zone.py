"""A box that accepts a dropped data file, with a button for the file dialog."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton

DATA_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet")


class DropZone(QFrame):
    """Emits `file_chosen(path)` for a dropped data file or folder, or one picked with Choose…."""

    file_chosen = Signal(str)
    browse_requested = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setObjectName("dropZone")
        self._idle_style = "#dropZone { border: 2px dashed palette(mid); border-radius: 8px; }"
        self.setStyleSheet(self._idle_style)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(14, 12, 14, 12)
        self.label = QLabel("Drop a .jsonl / .json / .csv / .parquet file (or a saved dataset folder) here")
        self.label.setWordWrap(True)
        self.button = QPushButton("Choose file…")
        lay.addWidget(self.label, 1)
        lay.addWidget(self.button)
        self.button.clicked.connect(self.browse_requested)

    def show_path(self, path: str) -> None:
        self.label.setText(f"<b>{Path(path).name}</b><br><span style='color:palette(placeholder-text)'>{path}</span>")

    @staticmethod
    def accepts(path: str) -> bool:
        p = Path(path)
        return p.is_dir() or p.suffix.lower() in DATA_SUFFIXES

    def _path_of(self, event) -> str:
        urls = event.mimeData().urls() if event.mimeData().hasUrls() else []
        return urls[0].toLocalFile() if urls else ""

    def dragEnterEvent(self, event) -> None:
        if self.accepts(self._path_of(event)):
            event.acceptProposedAction()
            self.setStyleSheet("#dropZone { border: 2px dashed palette(highlight); border-radius: 8px; }")

    def dragLeaveEvent(self, event) -> None:
        self.setStyleSheet(self._idle_style)

    def dropEvent(self, event) -> None:
        self.setStyleSheet(self._idle_style)
        path = self._path_of(event)
        if self.accepts(path):
            event.acceptProposedAction()
            self.file_chosen.emit(path)
