"""One `engine ...` child process, its JSON-lines events turned into Qt signals.

    proc = EngineProcess()
    proc.event.connect(on_event)          # every event dict (engine/events.py SCHEMA)
    proc.output.connect(log.appendPlainText)
    proc.finished.connect(on_finished)    # (exit code, crashed)
    proc.start(["train", "cfg.yaml", "--events", "-"])
    proc.cancel()                         # SIGTERM: the engine checkpoints and exits...
                                          # ...and is killed if it has not after `grace_ms`

The engine runs in its own process (never a thread of the GUI) so that Cancel
really stops it and the OS gets all of its memory back, whatever state torch or
CUDA were in.
"""

from __future__ import annotations

import os
from typing import Optional

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, Signal

from app.engine_command import engine_invocation
from app.event_lines import EventLineBuffer, TextLine

# How long Cancel waits for the engine to write its checkpoint before killing it.
# A LoRA checkpoint is small; the wait is mostly the step in progress finishing.
DEFAULT_GRACE_MS = 60_000
STDERR_TAIL_LINES = 40


class EngineProcess(QObject):
    """Runs `engine ARGS` and emits its events, its other output and how it ended."""

    started = Signal()
    event = Signal(dict)
    output = Signal(str)
    finished = Signal(int, bool)  # exit code, crashed (killed, signal or failed to start)

    def __init__(self, parent: Optional[QObject] = None, grace_ms: int = DEFAULT_GRACE_MS):
        super().__init__(parent)
        self.grace_ms = grace_ms
        self.args: list[str] = []
        self.stderr_tail: list[str] = []
        self.events: list[dict] = []
        self.cancel_requested = False
        self.killed = False
        self._proc: Optional[QProcess] = None
        self._out = EventLineBuffer()
        self._err = EventLineBuffer()
        self._kill_timer = QTimer(self)
        self._kill_timer.setSingleShot(True)
        self._kill_timer.timeout.connect(self.kill)

    # -- control -------------------------------------------------------------
    def start(self, args: list[str], cwd: Optional[str] = None, stdin_open: bool = False) -> None:
        """Start `engine *args`. Refuses to start a second process while one runs."""
        if self.is_running():
            raise RuntimeError("an engine process is already running")
        self.args = list(args)
        self.stderr_tail, self.events = [], []
        self.cancel_requested = self.killed = False
        self._out, self._err = EventLineBuffer(), EventLineBuffer()
        proc = QProcess(self)
        env = QProcessEnvironment.systemEnvironment()
        env.insert("PYTHONUNBUFFERED", "1")  # events must arrive as they happen, not in 8 KB blocks
        env.insert("PYTHONIOENCODING", "utf-8")
        proc.setProcessEnvironment(env)
        if cwd:
            proc.setWorkingDirectory(cwd)
        proc.readyReadStandardOutput.connect(self._read_stdout)
        proc.readyReadStandardError.connect(self._read_stderr)
        proc.finished.connect(self._on_finished)
        proc.errorOccurred.connect(self._on_error)
        proc.started.connect(self.started)
        self._proc = proc
        program, arguments = engine_invocation(self.args)
        proc.start(program, arguments)
        if not stdin_open:
            proc.closeWriteChannel()

    def write_line(self, text: str) -> None:
        """Send one line to the engine's stdin (chat)."""
        if self._proc is not None:
            self._proc.write((text.rstrip("\n") + "\n").encode("utf-8"))

    def close_stdin(self) -> None:
        if self._proc is not None:
            self._proc.closeWriteChannel()

    def cancel(self) -> None:
        """Ask the engine to checkpoint and stop (SIGTERM); kill it if it is still there after grace_ms.

        A second cancel while it is stopping kills it at once.
        """
        if not self.is_running():
            return
        if self.cancel_requested:
            self.kill()
            return
        self.cancel_requested = True
        self._proc.terminate()
        self._kill_timer.start(self.grace_ms)

    def kill(self) -> None:
        """Stop the engine now (SIGKILL); the run folder keeps its last complete checkpoint."""
        if self.is_running():
            self.killed = True
            self._proc.kill()

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.state() != QProcess.ProcessState.NotRunning

    def pid(self) -> int:
        return int(self._proc.processId()) if self._proc is not None else 0

    def wait(self, msecs: int = 30_000) -> bool:
        """Block until the process ends (tests and shutdown only; the GUI uses the finished signal)."""
        return self._proc is None or self._proc.waitForFinished(msecs)

    def cli_error(self) -> str:
        """The engine's own one-line error (`error: ...` on stderr: a user error, exit 2), or ''."""
        for line in reversed(self.stderr_tail):
            if line.startswith("error: "):
                return line[len("error: "):]
        return ""

    # -- plumbing ------------------------------------------------------------
    def _dispatch(self, items, from_stderr: bool) -> None:
        for item in items:
            if isinstance(item, TextLine):
                if from_stderr:
                    self.stderr_tail = (self.stderr_tail + [item.text])[-STDERR_TAIL_LINES:]
                self.output.emit(item.text)
            else:
                self.events.append(item)
                self.event.emit(item)

    def _read_stdout(self) -> None:
        self._dispatch(self._out.feed(self._proc.readAllStandardOutput().data()), False)

    def _read_stderr(self) -> None:
        self._dispatch(self._err.feed(self._proc.readAllStandardError().data()), True)

    def _on_finished(self, code: int, status: QProcess.ExitStatus) -> None:
        self._kill_timer.stop()
        self._read_stdout()
        self._read_stderr()
        self._dispatch(self._out.flush(), False)
        self._dispatch(self._err.flush(), True)
        crashed = status == QProcess.ExitStatus.CrashExit or self.killed
        self.finished.emit(int(code), bool(crashed))

    def _on_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            program, _ = engine_invocation(self.args)
            msg = f"Could not start the engine ({program}): {self._proc.errorString()}."
            self.stderr_tail.append(f"error: {msg} Check the installation or the {os.environ.get('EDGETUNE_ENGINE') and 'EDGETUNE_ENGINE setting' or 'Python environment'}.")
            self.output.emit(msg)
            self.finished.emit(-1, True)
