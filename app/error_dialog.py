"""Engine errors as readable dialogs: the message, the hint, and (folded away) the raw output.

The engine's `error` events and its one-line `error: ...` carry a message that
names the problem and a hint that names the fix; that is what the user sees.
A crash's stderr goes under "Show Details..." for a bug report, never in front.
"""

from __future__ import annotations

from PySide6.QtWidgets import QMessageBox, QWidget


def show_engine_error(parent: QWidget, title: str, message: str, hint: str = "", details: str = "") -> QMessageBox:
    """Open (non-blocking, window-modal) a warning box; returns it so callers and tests can find it."""
    box = QMessageBox(parent)
    box.setIcon(QMessageBox.Icon.Warning)
    box.setWindowTitle(title)
    box.setText(message)
    if hint:
        box.setInformativeText(f"<b>What to do:</b> {hint}")
    if details:
        box.setDetailedText(details)
    box.setObjectName("engineErrorDialog")
    box.open()
    return box
