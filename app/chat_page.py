"""Wizard step 6: chat with the base, the tuned and the exported model side by side.

Each column is one model served by its own `engine serve` child process (closing
the column gives its memory back) and read from its own thread, so a slow model
does not hold the others; one message goes to every loaded column and the
replies stream in together. Comparing base and tuned shows what training taught;
comparing tuned and exported shows the export kept it. A column whose model reads images
takes one with the next message (ChatColumn's "Image…").
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QHBoxLayout, QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget

from app.chat_column import ChatColumn
from app.page_header import PageHeader
from app.sampling_form import SamplingForm
from app.run_folder import list_exports


class ChatPage(QWidget):
    """Three ChatColumns (base / tuned / exported), one input line."""

    title = "Chat"

    def __init__(self, state, settings, parent=None):
        super().__init__(parent)
        self.state, self.settings = state, settings
        lay = QVBoxLayout(self)
        lay.addWidget(PageHeader("6 · Chat", "Ask the same question to the base model, your tuned run and its "
                                 "exported file. Each column's model runs in its own process; answers stream in."))
        sys_row = QHBoxLayout()
        sys_row.addWidget(QLabel("System prompt:"))
        self.system = QLineEdit()
        self.system.setPlaceholderText("(the model's default)")
        sys_row.addWidget(self.system, 1)
        self.load_all = QPushButton("Load models")
        self.load_all.setToolTip("Load (or reload, after changing the system prompt or sampling) every ticked column.")
        sys_row.addWidget(self.load_all)
        lay.addLayout(sys_row)
        self.sampling = SamplingForm()
        lay.addWidget(self.sampling)
        cols = QHBoxLayout()
        self.base = ChatColumn("Base model", settings)
        self.tuned = ChatColumn("Tuned (run folder)", settings)
        self.exported = ChatColumn("Exported file", settings)
        self.columns = [self.base, self.tuned, self.exported]
        for c in self.columns:
            cols.addWidget(c, 1)
            c.busy_changed.connect(lambda *_: self._update_buttons())
        lay.addLayout(cols, 1)
        row = QHBoxLayout()
        self.input = QLineEdit()
        self.input.setPlaceholderText("Type a message and press Enter")
        self.send_button = QPushButton("Send")
        self.stop_button = QPushButton("Stop")
        self.reset_button = QPushButton("New conversation")
        row.addWidget(self.input, 1)
        for b in (self.send_button, self.stop_button, self.reset_button):
            row.addWidget(b)
        lay.addLayout(row)
        self.input.returnPressed.connect(self.send)
        self.send_button.clicked.connect(self.send)
        self.stop_button.clicked.connect(lambda: [c.stop() for c in self.columns])
        self.reset_button.clicked.connect(lambda: [c.reset() for c in self.columns])
        self.load_all.clicked.connect(self.load_all_columns)
        state.run_dir_changed.connect(lambda *_: self.refresh_choices())
        state.value_changed.connect(lambda key: key == "model.name_or_path" and self.refresh_choices())
        self.refresh_choices()
        self._update_buttons()

    def refresh_choices(self) -> None:
        """Offer the wizard's model, its run folder and the run's exports in the matching columns."""
        self.base.set_choices([self.state.get("model.name_or_path")])
        run = self.state.run_dir
        self.tuned.set_choices([run] if run else [])
        self.exported.set_choices([str(p) for p in list_exports(Path(run))] if run else [])

    def load_all_columns(self) -> None:
        """(Re)load every enabled column with the current system prompt and sampling options."""
        for c in self.columns:
            if c.model.currentText().strip() and not c.busy:
                c.load(self.system.text().strip(), self.sampling.values())

    def send(self) -> int:
        """Send the input line to every loaded column; returns how many took it."""
        text = self.input.text().strip()
        if not text:
            return 0
        sent = sum(1 for c in self.columns if c.send(text))
        if sent:
            self.input.clear()
        return sent

    def shutdown(self) -> None:
        for c in self.columns:
            c.shutdown()

    def _update_buttons(self) -> None:
        busy = any(c.busy for c in self.columns)
        self.stop_button.setEnabled(busy)
