"""A chat model for one column: load, send (streaming chunks), reset, close.

The model runs in an `engine serve` child process (app/served_session.py): the
engine loads the HF folder, run folder (adapter on its base), .gguf or ONNX
folder there, so closing a column or the window gives its memory back. Starting
the child and streaming a reply block, so each chat column owns one ChatWorker
moved to a QThread; the GUI talks to it through queued signals and gets chunks
back the same way. `stop()` is read between chunks: Stop closes the connection
and the server ends the answer at the next token.
"""

from __future__ import annotations

import time
from typing import Optional

from PySide6.QtCore import QObject, QThread, Signal, Slot

from engine.errors import EdgetuneError


def open_session(spec: str, system: Optional[str], sampling: dict, cancelled=lambda: False):
    """A session for `spec` served by its own `engine serve` child (the engine picks the backend);
    `cancelled()` true while it loads (the column closing) stops the child and raises."""
    from app.served_session import ServedSession

    return ServedSession(spec, system=system or None, sampling=sampling, cancelled=cancelled)


class ChatWorker(QObject):
    """Lives in a worker thread; every slot runs there."""

    loaded = Signal(str)              # a description of the loaded model
    images_accepted = Signal(bool)    # whether the loaded model takes images (sent just before `loaded`)
    served = Signal(dict)             # url, api_key, model, curl and python snippets (a served model)
    chunk = Signal(str)               # streamed text
    reply_done = Signal(float, int)   # seconds, generated tokens
    failed = Signal(str)

    def __init__(self):
        super().__init__()
        self.session = None
        self.spec = ""
        self._stop = False

    @Slot(str, str, dict)
    def load(self, spec: str, system: str, sampling: dict) -> None:
        self.close_session()  # a reload replaces the old server: its memory goes back first
        self.spec, self._stop = spec, False
        try:
            self.session = open_session(spec, system, sampling, cancelled=lambda: self._stop)
        except EdgetuneError as e:
            self.failed.emit(str(e))
            return
        except Exception as e:  # a bug or a broken model file: say it, keep the GUI alive
            self.failed.emit(f"{type(e).__name__}: {e}")
            return
        self.images_accepted.emit(bool(getattr(self.session, "accepts_images", False)))
        self.loaded.emit(str(getattr(self.session, "label", "") or spec))
        if hasattr(self.session, "snippets"):
            self.served.emit(self.session.snippets())

    @Slot(str, str)
    def send(self, text: str, image: str = "") -> None:
        """Stream the reply to `text`; `image` (a file path, or empty) goes with it."""
        if self.session is None:
            self.failed.emit("No model loaded in this column.")
            return
        self._stop = False
        start, n = time.perf_counter(), 0
        try:
            if image:
                self.session.attach_image(image)
            for piece in self.session.send(text):
                self.chunk.emit(piece)
                n += 1
                if self._stop:
                    break
        except EdgetuneError as e:
            self.failed.emit(str(e))
            return
        except Exception as e:
            self.failed.emit(f"{type(e).__name__}: {e}")
            return
        stats = getattr(self.session, "last_stats", None) or {}
        # the session counts generated tokens; a chunk can hold several (or part of one)
        self.reply_done.emit(float(stats.get("seconds") or time.perf_counter() - start), int(stats.get("tokens") or n))

    @Slot()
    def reset(self) -> None:
        if self.session is not None:
            self.session.reset()

    def stop(self) -> None:
        """Called from the GUI thread: end the current reply at the next chunk."""
        self._stop = True

    def close_session(self) -> None:
        """Stop the model's server child, if any (column reloading or closing, app quitting)."""
        session, self.session = self.session, None
        if session is not None and hasattr(session, "close"):
            session.close()


_threads: list = []  # (thread, worker): kept alive until the app quits, never destroyed while running


def _stop_all() -> None:
    for thread, worker in _threads:
        worker.stop()
        thread.quit()
    for thread, worker in _threads:
        thread.wait(30_000)
        worker.close_session()
    _threads.clear()


def start_worker_thread(worker: ChatWorker) -> QThread:
    """Move `worker` to a new started thread; every such thread is stopped when the app quits."""
    from PySide6.QtCore import QCoreApplication

    if not _threads and QCoreApplication.instance() is not None:
        QCoreApplication.instance().aboutToQuit.connect(_stop_all)
    thread = QThread()
    worker.moveToThread(thread)
    thread.start()
    _threads.append((thread, worker))
    return thread


def stop_worker_thread(thread: QThread, worker: ChatWorker) -> None:
    """Stop one worker's thread now (its column is closing); a reply in progress ends at its next chunk."""
    worker.stop()
    thread.quit()
    thread.wait(30_000)
    worker.close_session()
    _threads[:] = [(t, w) for t, w in _threads if t is not thread]
