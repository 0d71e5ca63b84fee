"""One model in the chat window: its picker, its transcript, its own worker thread.

A column whose model reads images (the server said so when it loaded) shows "Image…": the
chosen (or dropped) image waits in a chip and goes with the next message, shown small in the
user's turn. For text-only models the button stays hidden, and a dropped image is refused in
the status line, saying why.
"""

from __future__ import annotations

import html
from pathlib import Path

from PySide6.QtCore import QUrl, Signal
from PySide6.QtGui import QTextCursor, QTextDocument
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFileDialog, QHBoxLayout, QLabel, QPushButton, QTextBrowser,
                               QVBoxLayout, QWidget)

from app.chat_worker import ChatWorker, start_worker_thread, stop_worker_thread
from app.image_chip import IMAGE_SUFFIXES, ImageChip, thumbnail

BUBBLE_THUMB = 96  # pixels: the image in the user's turn of the transcript


class ChatColumn(QWidget):
    """A titled column: choose a model (spec, run folder, .gguf, ONNX folder), load it, chat."""

    load_requested = Signal(str, str, dict)
    send_requested = Signal(str, str)  # text, image path ("" for none)
    reset_requested = Signal()
    busy_changed = Signal(bool)

    def __init__(self, title: str, settings, parent=None):
        super().__init__(parent)
        self.settings = settings
        self.loaded_spec = ""
        self.accepts_images = False
        self.sent_images = 0
        self.busy = False
        self.last_reply = ""
        self.worker = ChatWorker()
        self.thread = start_worker_thread(self.worker)
        self.load_requested.connect(self.worker.load)
        self.send_requested.connect(self.worker.send)
        self.reset_requested.connect(self.worker.reset)
        self.worker.loaded.connect(self._loaded)
        self.worker.chunk.connect(self._chunk)
        self.worker.reply_done.connect(self._reply_done)
        self.worker.failed.connect(self._failed)
        self.worker.served.connect(self._served)
        self.worker.images_accepted.connect(self._images_accepted)
        self.setAcceptDrops(True)
        self.serve_info: dict = {}

        lay = QVBoxLayout(self)
        lay.setContentsMargins(2, 2, 2, 2)
        head = QHBoxLayout()
        self.enabled = QCheckBox(title)
        self.enabled.setChecked(True)
        f = self.enabled.font()
        f.setBold(True)
        self.enabled.setFont(f)
        head.addWidget(self.enabled)
        head.addStretch(1)
        self.serve_button = QPushButton("Serve…")
        self.serve_button.setToolTip("Use this model from other tools: its OpenAI API URL, key, and curl and "
                                     "Python snippets")
        self.serve_button.setEnabled(False)
        head.addWidget(self.serve_button)
        lay.addLayout(head)
        row = QHBoxLayout()
        self.model = QComboBox()
        self.model.setEditable(True)
        self.model.setMinimumContentsLength(18)
        self.model.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.browse = QPushButton("…")
        self.browse.setToolTip("Choose a .gguf file, an ONNX folder, a run folder or a model folder")
        self.browse.setFixedWidth(32)
        self.load_button = QPushButton("Load")
        row.addWidget(self.model, 1)
        row.addWidget(self.browse)
        row.addWidget(self.load_button)
        lay.addLayout(row)
        self.transcript = QTextBrowser()
        lay.addWidget(self.transcript, 1)
        attach_row = QHBoxLayout()
        self.attach_button = QPushButton("Image…")
        self.attach_button.setToolTip("Attach an image to your next message (or drop one on this column)")
        keep = self.attach_button.sizePolicy()
        keep.setRetainSizeWhenHidden(True)  # transcripts of text and image columns stay level side by side
        self.attach_button.setSizePolicy(keep)
        self.attach_button.setVisible(False)
        self.image_chip = ImageChip()
        attach_row.addWidget(self.attach_button)
        attach_row.addWidget(self.image_chip, 1)
        lay.addLayout(attach_row)
        self.status = QLabel("not loaded")
        self.status.setWordWrap(True)
        self.status.setStyleSheet("color: palette(placeholder-text);")
        lay.addWidget(self.status)
        self.load_button.clicked.connect(self.load)
        self.browse.clicked.connect(self._browse)
        self.serve_button.clicked.connect(self.show_serve_dialog)
        self.attach_button.clicked.connect(self._choose_image)

    # choices ----------------------------------------------------------------------
    def set_choices(self, specs: list[str]) -> None:
        current = self.model.currentText()
        self.model.clear()
        self.model.addItems(specs)
        if current and current in specs:
            self.model.setCurrentText(current)

    def _browse(self) -> None:
        start = self.settings.last_folder("chat")
        path, _ = QFileDialog.getOpenFileName(self, "GGUF model", start, "GGUF (*.gguf);;All files (*)")
        if not path:
            path = QFileDialog.getExistingDirectory(self, "Model, run or ONNX folder", start)
        if path:
            self.settings.set_last_folder("chat", path)
            self.model.setCurrentText(path)

    # actions ------------------------------------------------------------------------
    def load(self, system: str = "", sampling: dict | None = None) -> None:
        spec = self.model.currentText().strip()
        if not spec or not self.enabled.isChecked():
            return
        self._set_busy(True)
        self.serve_info = {}
        self.serve_button.setEnabled(False)
        self._images_accepted(False)  # until the new model says otherwise
        self.status.setText(f"loading {spec}…")
        self.load_requested.emit(spec, system or "", dict(sampling or {}))

    def send(self, text: str) -> bool:
        """Append the user's message and ask the worker for a reply; False when this column is off or busy."""
        if not self.enabled.isChecked() or self.busy or not self.loaded_spec:
            return False
        image = self.image_chip.path
        self._append(f"<p style='margin-top:8px'><b>You:</b> {self._image_html(image)}{html.escape(text)}</p>"
                     f"<p><b>Model:</b> ")
        self.image_chip.clear()
        self.last_reply = ""
        self._set_busy(True)
        self.send_requested.emit(text, image)
        return True

    # images ---------------------------------------------------------------------------
    def attach_image(self, path: str) -> bool:
        """Put the image at `path` in the chip, to go with the next message; False (and why, in the status
        line) when this column's model reads text only or the file is no readable image."""
        if not self.loaded_spec:
            self._failed("Load a vision-language model in this column first, then attach an image.")
            return False
        if not self.accepts_images:
            name = self.loaded_spec.rstrip("/").rsplit("/", 1)[-1]
            self._failed(f"{name} reads text only, so it cannot take an image. Load a vision-language model "
                         f"(a SmolVLM folder or a run trained from one, not its .gguf) in this column.")
            return False
        from engine.data.formats import RecordError
        from engine.vision.data import check_image

        try:
            check_image(path)
        except RecordError as e:
            self._failed(f"{e}.")
            return False
        self.image_chip.show_image(path)
        return True

    def _choose_image(self) -> None:
        start = self.settings.last_folder("chat-image")
        patterns = " ".join(f"*{s}" for s in IMAGE_SUFFIXES)
        path, _ = QFileDialog.getOpenFileName(self, "Image for the next message", start,
                                              f"Images ({patterns});;All files (*)")
        if path:
            self.settings.set_last_folder("chat-image", str(Path(path).parent))
            self.attach_image(path)

    def _image_html(self, path: str) -> str:
        """The image small in the transcript (kept in the document: the file may change or go later)."""
        if not path:
            return ""
        image = thumbnail(path, BUBBLE_THUMB)
        if image.isNull():
            return f"[{html.escape(Path(path).name)}] "
        self.sent_images += 1
        url = QUrl(f"chatimage://{self.sent_images}")
        self.transcript.document().addResource(QTextDocument.ResourceType.ImageResource, url, image)
        return f"<br><img src='{url.toString()}' title='{html.escape(path, quote=True)}'><br>"

    @staticmethod
    def _dropped_image(event) -> str:
        urls = event.mimeData().urls() if event.mimeData().hasUrls() else []
        path = urls[0].toLocalFile() if len(urls) == 1 else ""
        return path if path.lower().endswith(IMAGE_SUFFIXES) else ""

    def dragEnterEvent(self, event) -> None:
        if self._dropped_image(event) and self.loaded_spec:
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        path = self._dropped_image(event)
        if path:
            event.acceptProposedAction()
            self.attach_image(path)

    def reset(self) -> None:
        self.transcript.clear()
        self.image_chip.clear()
        self.reset_requested.emit()

    def stop(self) -> None:
        self.worker.stop()

    def shutdown(self) -> None:
        """Stop the worker thread and the model's server child (window closing): the memory goes back."""
        stop_worker_thread(self.thread, self.worker)
        self.serve_info = {}
        self.serve_button.setEnabled(False)

    def show_serve_dialog(self):
        """The URL, key and snippets of this column's model server (non-modal; returned for tests)."""
        from app.serve_dialog import ServeDialog

        if not self.serve_info:
            return None
        dialog = ServeDialog(self.serve_info, self)
        dialog.show()
        return dialog

    # worker results ---------------------------------------------------------------------
    def _images_accepted(self, accepted: bool) -> None:
        self.accepts_images = accepted
        self.attach_button.setVisible(accepted)
        if not accepted:
            self.image_chip.clear()

    def _loaded(self, description: str) -> None:
        self.loaded_spec = self.model.currentText().strip()
        self.status.setText(f"ready: {description}")
        self._set_busy(False)

    def _served(self, info: dict) -> None:
        self.serve_info = dict(info)
        self.serve_button.setEnabled(True)
        self.serve_button.setToolTip(f"Served at {info.get('url')} as '{info.get('model')}': URL, key, curl and Python")

    def _chunk(self, text: str) -> None:
        self.last_reply += text
        cur = self.transcript.textCursor()
        cur.movePosition(QTextCursor.MoveOperation.End)
        cur.insertText(text)
        self.transcript.setTextCursor(cur)
        self.transcript.ensureCursorVisible()

    def _reply_done(self, seconds: float, chunks: int) -> None:
        rate = chunks / seconds if seconds > 0 else 0.0
        # short enough for a narrow column; the full spec is in the picker above and the tooltip
        name = self.loaded_spec.rstrip("/").rsplit("/", 1)[-1]
        self.status.setText(f"{name}: {chunks} tokens in {seconds:.1f}\u00a0s, {rate:.1f}\u00a0tokens/s")
        self.status.setToolTip(self.loaded_spec)
        self._set_busy(False)

    def _failed(self, message: str) -> None:
        self.status.setText(message)
        self.status.setStyleSheet("color: #d1242f;")
        self._set_busy(False)

    def _append(self, html_text: str) -> None:
        cur = self.transcript.textCursor()
        cur.movePosition(QTextCursor.MoveOperation.End)
        cur.insertHtml(html_text)
        self.transcript.setTextCursor(cur)

    def _set_busy(self, busy: bool) -> None:
        self.busy = busy
        if busy:
            self.status.setStyleSheet("color: palette(placeholder-text);")
        self.load_button.setEnabled(not busy)
        self.busy_changed.emit(busy)
