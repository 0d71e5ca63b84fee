"""A one-shot engine command whose stdout is one JSON document (`engine plan ... --json`).

    q = EngineQuery(["plan", "cfg.yaml", "lr=1e-3", "--json"])
    q.result.connect(show)      # the parsed JSON
    q.failed.connect(warn)      # the engine's one-line error, or why it could not run
    q.start()

Runs as a child process like every engine call: the GUI never blocks, and what
the app shows is exactly what `engine ...` prints in a terminal.
"""

from __future__ import annotations

import json
from typing import Optional

from PySide6.QtCore import QObject, QProcess, Signal

from app.engine_command import engine_invocation


class EngineQuery(QObject):
    """Run `engine ARGS`, parse its stdout as JSON."""

    result = Signal(object)
    failed = Signal(str)

    def __init__(self, args: list[str], parent: Optional[QObject] = None):
        super().__init__(parent)
        self.args = list(args)
        self.proc = QProcess(self)
        self.proc.finished.connect(self._finished)
        self.proc.errorOccurred.connect(self._error)
        self._done = False

    def start(self) -> None:
        program, arguments = engine_invocation(self.args)
        self.proc.start(program, arguments)
        self.proc.closeWriteChannel()

    def cancel(self) -> None:
        self._done = True
        if self.proc.state() != QProcess.ProcessState.NotRunning:
            self.proc.kill()
            self.proc.waitForFinished(2000)  # reap it, so no zombie outlives the query

    def _report_failure(self, message: str) -> None:
        if not self._done:
            self._done = True
            self.failed.emit(message)

    def _error(self, error) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self._report_failure(f"could not start the engine: {self.proc.errorString()}")

    def _finished(self, code: int, status) -> None:
        if self._done:
            return
        out = bytes(self.proc.readAllStandardOutput().data()).decode("utf-8", errors="replace")
        err = bytes(self.proc.readAllStandardError().data()).decode("utf-8", errors="replace")
        if code != 0:
            lines = [l for l in err.splitlines() if l.strip()]
            msg = next((l[len("error: "):] for l in reversed(lines) if l.startswith("error: ")), lines[-1] if lines else f"exit code {code}")
            self._report_failure(msg)
            return
        try:
            data = json.loads(out)
        except json.JSONDecodeError:
            self._report_failure(f"engine {' '.join(self.args[:1])} printed no JSON: {out.strip()[:200]!r}")
            return
        self._done = True
        self.result.emit(data)
