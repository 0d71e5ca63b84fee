"""Run a short blocking call (read a model, tokenise a data file) off the GUI thread.

    run_in_thread(describe_model, "smollm2-135m-instruct", on_done=show, on_failed=warn)
    # show(return value); warn(readable message: the EdgetuneError text, or "Type: message")

Long jobs (training, export) are child processes instead (engine_process.py);
this is for calls of a few seconds where a process would only add start-up time.
"""

from __future__ import annotations

from typing import Any, Callable

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from engine.errors import EdgetuneError

_live: set = set()  # keeps tasks alive until they report; Qt holds no Python reference


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
            result = self.fn(*self.args, **self.kwargs)
        except EdgetuneError as e:
            self.task.failed.emit(str(e))
        except Exception as e:  # a bug, but the GUI must say so instead of dying
            self.task.failed.emit(f"{type(e).__name__}: {e}")
        else:
            self.task.done.emit(result)


def run_in_thread(fn: Callable[..., Any], *args, on_done: Callable[[Any], None] | None = None,
                  on_failed: Callable[[str], None] | None = None, **kwargs) -> ThreadTask:
    """Start fn(*args, **kwargs) on the global thread pool; callbacks run in the GUI thread.

    The callbacks are connected before the call starts, so a fast call cannot report
    before anyone listens.
    """
    task = ThreadTask()
    _live.add(task)
    if on_done is not None:
        task.done.connect(on_done)
    if on_failed is not None:
        task.failed.connect(on_failed)
    task.done.connect(lambda *_: _live.discard(task))
    task.failed.connect(lambda *_: _live.discard(task))
    QThreadPool.globalInstance().start(_Runnable(task, fn, args, kwargs))
    return task
