"""A chat model living in its own thread: load, send (streaming chunks), reset.

The engine's `ChatSession` (engine/chat) loads an HF folder, a run folder
(adapter on its base), a .gguf or an ONNX folder and streams the reply in
chunks. Loading and generating block for seconds, so each chat column owns one
ChatWorker moved to a QThread; the GUI talks to it through queued signals and
gets chunks back the same way. `stop()` is read between chunks, so Stop ends a
long answer at the next token.
"""

from __future__ import annotations

import time
from typing import Optional

from PySide6.QtCore import QObject, QThread, Signal, Slot

from engine.errors import EdgetuneError


def open_session(spec: str, system: Optional[str], sampling: dict):
    """A ChatSession for `spec` (the engine decides the backend from what the spec is)."""
    from engine.chat import ChatSession

    return ChatSession(spec, system=system or None, **sampling)


class ChatWorker(QObject):
    """Lives in a worker thread; every slot runs there."""

    loaded = Signal(str)              # a description of the loaded model
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
        from app.worker import ENGINE_LOCK

        self.session, self.spec = None, spec
        try:
            with ENGINE_LOCK:  # no two threads inside transformers' imports at once
                self.session = open_session(spec, system, sampling)
        except EdgetuneError as e:
            self.failed.emit(str(e))
            return
        except Exception as e:  # a bug or a broken model file: say it, keep the GUI alive
            self.failed.emit(f"{type(e).__name__}: {e}")
            return
        self.loaded.emit(str(getattr(self.session, "label", "") or spec))

    @Slot(str)
    def send(self, text: str) -> None:
        if self.session is None:
            self.failed.emit("No model loaded in this column.")
            return
        self._stop = False
        start, n = time.perf_counter(), 0
        try:
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


_threads: list = []  # (thread, worker): kept alive until the app quits, never destroyed while running


def _stop_all() -> None:
    for thread, worker in _threads:
        worker.stop()
        thread.quit()
    for thread, _ in _threads:
        thread.wait(30_000)
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
    _threads[:] = [(t, w) for t, w in _threads if t is not thread]
