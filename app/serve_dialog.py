""""Serve this model": how to reach a chat column's model from any OpenAI client.

The column's model already runs in an `engine serve` child on loopback with a random key;
this dialog shows its URL and key and a curl command and a Python snippet to copy. The server
lives as long as the column keeps the model loaded.
"""

from __future__ import annotations

from PySide6.QtGui import QFontDatabase, QGuiApplication
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QFormLayout, QHBoxLayout, QLabel, QLineEdit, QPlainTextEdit,
                               QPushButton, QVBoxLayout, QWidget)


def _copy_row(widget: QWidget, text: str) -> QWidget:
    """`widget` with a Copy button that puts `text` on the clipboard."""
    row = QWidget()
    lay = QHBoxLayout(row)
    lay.setContentsMargins(0, 0, 0, 0)
    lay.addWidget(widget, 1)
    button = QPushButton("Copy")
    button.clicked.connect(lambda: QGuiApplication.clipboard().setText(text))
    lay.addWidget(button)
    return row


class ServeDialog(QDialog):
    """URL, key, curl and Python for one served model (`info` from ServedSession.snippets())."""

    def __init__(self, info: dict, parent=None):
        super().__init__(parent)
        self.info = info
        self.setWindowTitle(f"Serve {info['model']}")
        lay = QVBoxLayout(self)
        note = QLabel("This model is served over the OpenAI API on this computer only (127.0.0.1) while its chat "
                      "column keeps it loaded. Point Open WebUI, an IDE assistant, LangChain or your own app at it. "
                      "To serve it to other machines, run <code>engine serve MODEL --host 0.0.0.0 --api-key-file "
                      "FILE</code> in a terminal.")
        note.setWordWrap(True)
        lay.addWidget(note)
        form = QFormLayout()
        mono = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        self.fields: dict[str, QWidget] = {}
        for key, title in (("url", "Base URL"), ("api_key", "API key"), ("model", "Model name")):
            edit = QLineEdit(info[key])
            edit.setReadOnly(True)
            edit.setFont(mono)
            self.fields[key] = edit
            form.addRow(title + ":", _copy_row(edit, info[key]))
        for key, title in (("curl", "curl"), ("python", "Python (openai)")):
            text = QPlainTextEdit(info[key])
            text.setReadOnly(True)
            text.setFont(mono)
            text.setMinimumHeight(110)
            self.fields[key] = text
            form.addRow(title + ":", _copy_row(text, info[key]))
        lay.addLayout(form)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        lay.addWidget(buttons)
        self.resize(720, 480)
