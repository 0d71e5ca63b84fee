"""Run a short blocking call (read a model, tokenise a data file) off the GUI thread.

    run_in_thread(describe_model, "smollm2-135m-instruct", on_done=show, on_failed=warn)
    # show(return value); warn(readable message: the EdgetuneError text, or "Type: message")

Long jobs (training, export) are child processes instead (engine_process.py);
this is for calls of a few seconds where a process would only add start-up time.

Calls run one at a time on a single background thread, holding ENGINE_LOCK:
transformers' lazy imports and a tokenizer are not safe to enter from two
threads at once (a Model-page check and a Data-page inspection can overlap).
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Optional

import shiboken6
from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from engine.errors import EdgetuneError

ENGINE_LOCK = threading.RLock()  # one engine call at a time inside the GUI process
_live: set = set()  # keeps tasks alive until they report; Qt holds no Python reference
_pool: Optional[QThreadPool] = None


def engine_pool() -> QThreadPool:
    """The one-thread pool every engine call of the GUI runs on."""
    global _pool
    if _pool is None:
        _pool = QThreadPool()
        _pool.setMaxThreadCount(1)
        _pool.setExpiryTimeout(-1)
    return _pool


class ThreadTask(QObject):
    """Signals of one background call; emitted in the GUI thread (queued)."""

    done = Signal(object)
    failed = Signal(str)


class _Runnable(QRunnable):
    def __init__(self, task: ThreadTask, fn: Callable, args: tuple, kwargs: dict):
        super().__init__()
        self.task, self.fn, self.args, self.kwargs = task, fn, args, kwargs
        self.setAutoDelete(True)

    def run(self) -> None:
        try:
            with ENGINE_LOCK:
                result = self.fn(*self.args, **self.kwargs)
        except EdgetuneError as e:
            self._report(self.task.failed, str(e))
        except Exception as e:  # a bug, but the GUI must say so instead of dying
            self._report(self.task.failed, f"{type(e).__name__}: {e}")
        else:
            self._report(self.task.done, result)

    def _report(self, signal, value) -> None:
        try:
            signal.emit(value)
        except RuntimeError:  # the app is shutting down and the receiver is gone
            pass


def _guarded(context: Optional[QObject], fn: Callable) -> Callable:
    """fn, skipped when `context` (the widget that asked) has been deleted meanwhile."""
    if context is None:
        return fn
    return lambda value: shiboken6.isValid(context) and fn(value)


def run_in_thread(fn: Callable[..., Any], *args, on_done: Callable[[Any], None] | None = None,
                  on_failed: Callable[[str], None] | None = None, context: Optional[QObject] = None,
                  **kwargs) -> ThreadTask:
    """Queue fn(*args, **kwargs) on the engine thread; callbacks run in the GUI thread.

    The callbacks are connected before the call starts, so a fast call cannot report
    before anyone listens; with `context`, they are dropped once that widget is gone.
    """
    task = ThreadTask()
    _live.add(task)
    if on_done is not None:
        task.done.connect(_guarded(context, on_done))
    if on_failed is not None:
        task.failed.connect(_guarded(context, on_failed))
    task.done.connect(lambda *_: _live.discard(task))
    task.failed.connect(lambda *_: _live.discard(task))
    engine_pool().start(_Runnable(task, fn, args, kwargs))
    return task
