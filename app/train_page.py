"""Wizard step 4: run `engine train ... --events -` as a child process and watch it live.

The page builds the command from the wizard state (shown, copyable: the same
run works in a terminal), starts it with QProcess, and turns its JSON-lines
events into a loss / eval-loss / learning-rate plot, a progress bar with ETA,
tokens/s, memory and a log. Preference stages (DPO, ORPO, SimPO, KTO, reward
models) report their own metrics in step events; those get a second plot next
to the loss (app/metrics_plot.py) and a line in the progress box. Cancel sends SIGTERM: the engine finishes the step,
writes a checkpoint and exits resumable; if it has not exited after a grace
period (or Cancel is pressed again) it is killed. Resume continues from the
newest checkpoint. A crash of the child is reported and the run stays resumable.
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QFontDatabase
from PySide6.QtWidgets import (QGridLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit, QPlainTextEdit, QProgressBar,
                               QPushButton, QSplitter, QVBoxLayout, QWidget)

from app.engine_command import display_command
from app.engine_process import EngineProcess
from app.error_dialog import show_engine_error
from app.event_compat import normalise
from app.page_header import PageHeader
from app.recipe_metrics import metrics_summary, numeric_metrics
from app.run_folder import list_checkpoints
from engine.errors import EdgetuneError
from engine.events import read_events


def format_seconds(s: float) -> str:
    s = int(max(0, s))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


class TrainPage(QWidget):
    """Start / Cancel / Resume a training run and show its events."""

    title = "Train"
    run_finished = Signal(str, str)   # run folder, status (completed / interrupted / failed / crashed)
    running_changed = Signal(bool)

    def __init__(self, state, settings, parent=None):
        super().__init__(parent)
        self.state, self.settings = state, settings
        self.process = EngineProcess(self)
        self.process.event.connect(self.handle_event)
        self.process.output.connect(self._log)
        self.process.finished.connect(self._finished)
        self.run_dir = ""
        self.stage = "sft"
        self.status = "idle"
        self.error_event: dict | None = None
        self.finished_event: dict | None = None
        self.dialog = None
        self._first_step: tuple | None = None  # (wall time, step) of the first step event of this process

        lay = QVBoxLayout(self)
        lay.addWidget(PageHeader("4 · Train", "Training runs as a separate `engine train` process; this page shows "
                                 "its events live. Cancel saves a checkpoint first, so any run can be resumed."))
        cmd_row = QHBoxLayout()
        cmd_row.addWidget(QLabel("Command:"))
        self.command = QLineEdit()
        self.command.setReadOnly(True)
        self.command.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.command.setToolTip("The same run from a terminal: copy this line.")
        cmd_row.addWidget(self.command, 1)
        lay.addLayout(cmd_row)

        buttons = QHBoxLayout()
        self.start_button = QPushButton("Start training")
        self.start_button.setDefault(True)
        self.cancel_button = QPushButton("Cancel (checkpoint, then stop)")
        self.resume_button = QPushButton("Resume")
        self.open_button = QPushButton("Open run folder")
        for b in (self.start_button, self.cancel_button, self.resume_button, self.open_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        lay.addLayout(buttons)

        stats = QGroupBox("Progress")
        grid = QGridLayout(stats)
        self.progress = QProgressBar()
        self.progress.setFormat("step %v / %m")
        grid.addWidget(self.progress, 0, 0, 1, 6)
        self.labels: dict[str, QLabel] = {}
        self.captions: dict[str, QLabel] = {}
        for i, (key, name) in enumerate((("status", "Status"), ("eta", "ETA"), ("loss", "Loss"),
                                         ("speed", "Tokens/s"), ("memory", "Memory"), ("device", "Device"),
                                         ("stage", "Stage"), ("metrics", "Metrics"))):
            cap = QLabel(name + ":")
            cap.setStyleSheet("color: palette(placeholder-text);")
            val = QLabel("—")
            val.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.labels[key] = val
            self.captions[key] = cap
            grid.addWidget(cap, 1 + i // 3, (i % 3) * 2)
            grid.addWidget(val, 1 + i // 3, (i % 3) * 2 + 1)
        for col in (1, 3, 5):
            grid.setColumnStretch(col, 1)
        self._show_metrics_line(False)
        lay.addWidget(stats)

        split = QSplitter(Qt.Orientation.Vertical)
        self.plot_holder = QWidget()  # the matplotlib canvas is built on first use (keeps start-up fast)
        self.plot_holder.setMinimumHeight(260)
        QHBoxLayout(self.plot_holder).setContentsMargins(0, 0, 0, 0)
        self._plot = None
        self.metrics_plot = None  # the recipe's metrics, built when a step event first carries them
        split.addWidget(self.plot_holder)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(5000)
        self.log.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.log.setPlaceholderText("engine output")
        split.addWidget(self.log)
        split.setSizes([420, 140])
        lay.addWidget(split, 1)

        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.resume_button.clicked.connect(self.resume)
        self.open_button.clicked.connect(lambda: self.run_dir and QDesktopServices.openUrl(QUrl.fromLocalFile(self.run_dir)))
        state.value_changed.connect(lambda *_: self._refresh_command())
        self._refresh_command()
        self._update_buttons()

    @property
    def plot(self):
        """The loss / lr canvas (matplotlib is imported the first time it is needed)."""
        if self._plot is None:
            from app.loss_plot import LossPlot

            self._plot = LossPlot()
            self.plot_holder.layout().insertWidget(0, self._plot, 3)
        return self._plot

    def _metrics_plot(self):
        """The recipe-metrics canvas beside the loss plot, built (and shown) when metrics first arrive."""
        if self.metrics_plot is None:
            from app.metrics_plot import MetricsPlot

            self.plot  # noqa: B018  (the loss plot stays on the left)
            self.metrics_plot = MetricsPlot()
            self.metrics_plot.set_stage(self.stage)
            self.plot_holder.layout().addWidget(self.metrics_plot, 2)
        self.metrics_plot.setVisible(True)
        return self.metrics_plot

    def _completions_view(self):
        """The sampled-answers table under the plots (online RL only), built when the first answers arrive."""
        if getattr(self, "completions_view", None) is None:
            from app.completions_view import CompletionsView

            self.completions_view = CompletionsView()
            self.plot_holder.parentWidget().insertWidget(1, self.completions_view)
        self.completions_view.setVisible(True)
        return self.completions_view

    def clear_plots(self) -> None:
        """Empty the curves for a new run or a replay; the metrics plot hides until metrics arrive again."""
        self.plot.clear()
        if getattr(self, "completions_view", None) is not None:
            self.completions_view.clear_rows()
            self.completions_view.setVisible(False)
        self.stage = "sft"
        self.labels["stage"].setText("—")
        self._show_metrics_line(False)
        if self.metrics_plot is not None:
            self.metrics_plot.clear()
            self.metrics_plot.setVisible(False)

    def _show_metrics_line(self, visible: bool) -> None:
        self.captions["metrics"].setVisible(visible)
        self.labels["metrics"].setVisible(visible)

    def showEvent(self, event) -> None:
        super().showEvent(event)
        self.plot  # noqa: B018  (build the canvas before the page is seen)

    # commands ------------------------------------------------------------------
    def train_args(self) -> list[str]:
        return ["train", *self.state.config_args(), "--events", "-"]

    def _refresh_command(self) -> None:
        if not self.process.is_running():
            self.command.setText(display_command(self.train_args()))

    def _unique_output_dir(self) -> None:
        """Relative or unchanged output folders become <runs dir>/<model>-<time>, so runs never collide."""
        out = self.state.get("output_dir")
        if not Path(out).is_absolute() or Path(out).exists():
            model = Path(self.state.get("model.name_or_path").rstrip("/")).name.replace(".gguf", "")
            stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
            self.state.set("output_dir", str(self.settings.runs_dir / f"{model}-{stamp}"))

    def start(self) -> bool:
        """Validate the config and start a new run; False (with a dialog) when it cannot start."""
        if self.process.is_running():
            return False
        if not self.state.get("data.path"):
            self.dialog = show_engine_error(self, "No training data", "Choose a data file on the Data page first.")
            return False
        self._unique_output_dir()
        try:
            self.state.resolved_config()
        except EdgetuneError as e:
            self.dialog = show_engine_error(self, "Invalid setting", str(e), "Fix it on the Method & fit page.")
            return False
        self.run_dir = self.state.get("output_dir")
        self.state.set_run_dir(self.run_dir)
        self.clear_plots()
        self.log.clear()
        self._launch(self.train_args())
        return True

    def resume(self) -> bool:
        """Continue the current run folder from its newest checkpoint."""
        if self.process.is_running() or not self.run_dir:
            return False
        self._launch(["train", "--resume", self.run_dir, "--events", "-"])
        return True

    def cancel(self) -> None:
        """First press: checkpoint then stop. Second press: stop now."""
        if not self.process.is_running():
            return
        if self.process.cancel_requested:
            self._log("Cancel pressed again: stopping the engine now.")
        else:
            self._log("Cancel: the engine finishes this step, saves a checkpoint and stops…")
            self.cancel_button.setText("Stop now")
        self._set_status("stopping")
        self.process.cancel()

    def _launch(self, args: list[str]) -> None:
        self.error_event = self.finished_event = None
        self._first_step = None
        self.command.setText(display_command(args))
        self._log(f"$ {display_command(args)}")
        self._set_status("starting")
        self.process.start(args, cwd=str(Path.cwd()))
        self.running_changed.emit(True)
        self._update_buttons()

    # events ----------------------------------------------------------------------
    def handle_event(self, raw: dict, live: bool = True) -> None:
        """Apply one engine event (live from the process, or replayed from events.jsonl)."""
        ev = normalise(raw)
        t = ev["type"]
        if t == "run_started":
            if live:  # a replayed run may have been moved since; the folder we opened is the truth
                self.run_dir = str(ev.get("run_dir") or self.run_dir)
            total = int(ev.get("total_steps") or 0)
            self.progress.setMaximum(max(1, total))
            self.plot.set_total_steps(total)
            dev = f"{ev.get('device', '?')}" + (f" ({ev['dtype']})" if ev.get("dtype") else "")
            backend = ev.get("backend", "")
            self.labels["device"].setText(f"{dev}, backend {backend}" if backend else dev)
            self.labels["device"].setToolTip(str(ev.get("backend_reason", "")))
            self.stage = str(ev.get("stage") or "sft")  # engines before preference stages only did SFT
            self.labels["stage"].setText(self.stage)
            if self.metrics_plot is not None:
                self.metrics_plot.set_stage(self.stage)
            self._set_status("training")
            resumed = f", resumed from {Path(ev['resumed_from']).name}" if ev.get("resumed_from") else ""
            if ev.get("trainable_params"):
                self._log(f"run {self.run_dir}: {ev.get('trainable_params'):,} trainable of {ev.get('total_params', 0):,} "
                          f"params, {ev.get('train_records')} train / {ev.get('eval_records')} eval sequences, "
                          f"{total} steps{resumed}, stage {self.stage}")
        elif t == "plan":
            gb = ev.get("total_gb")
            if gb is not None:
                self.labels["memory"].setText(f"planned {gb:.2f} GB")
            self._log(f"plan: batch size {ev.get('batch_size')}, gradient checkpointing {ev.get('gradient_checkpointing')}"
                      + (f", planned peak {gb:.2f} GB" if gb is not None else ""))
        elif t == "step":
            step, total = int(ev.get("step", 0)), int(ev.get("total_steps") or 0)
            if total:
                self.progress.setMaximum(total)
                self.plot.set_total_steps(total)
            self.progress.setValue(step)
            self.plot.add_step(step, ev.get("loss"), ev.get("lr"))
            if ev.get("loss") is not None:
                self.labels["loss"].setText(f"{ev['loss']:.4f} (step {step})")
            metrics = numeric_metrics(ev.get("metrics"))
            if metrics:
                plot = self._metrics_plot()
                plot.set_total_steps(total)
                plot.add_step(step, metrics)
                self.labels["metrics"].setText(metrics_summary(metrics) or "see the plot")
                self._show_metrics_line(True)
            if ev.get("tokens_per_s") is not None:
                self.labels["speed"].setText(f"{ev['tokens_per_s']:,.0f}")
            mem, per_rank = ev.get("peak_memory_gb"), ev.get("rank_memory_gb")
            if per_rank:  # N processes: each GPU's (rank's) own peak
                self.labels["memory"].setText("peak per rank: " + " / ".join(f"{gb:.2f}" for gb in per_rank) + " GB")
            elif mem is not None:
                self.labels["memory"].setText(f"{mem:.2f} GB peak")
            if live:
                self._update_eta(step, total, ev.get("time"))
        elif t == "completions":
            self._completions_view().add_event(ev)
        elif t == "eval":
            self.plot.add_eval(int(ev.get("step", 0)), ev.get("loss"))
            ppl = f", perplexity {ev['perplexity']:.2f}" if ev.get("perplexity") is not None else ""
            self._log(f"eval at step {ev.get('step')}: loss {ev.get('loss'):.4f}{ppl}")
        elif t == "checkpoint":
            self._log(f"checkpoint saved: {ev.get('path')}")
        elif t == "oom":
            self._log(f"out of memory at step {ev.get('step')}: retrying with batch size {ev.get('batch_size')} "
                      f"and grad accumulation {ev.get('grad_accum')}")
        elif t in ("warning", "message"):
            hint = f" — {ev['hint']}" if ev.get("hint") else ""
            self._log(f"{t}: {ev.get('message', '')}{hint}")
        elif t == "error":
            self.error_event = ev
            self._log(f"error: {ev.get('message', '')}" + (f" — {ev['hint']}" if ev.get("hint") else ""))
        elif t == "run_finished":
            self.finished_event = ev
            status = ev.get("status", "completed")
            self._set_status(status)
            if status == "completed":
                self.progress.setValue(self.progress.maximum())
                self.labels["eta"].setText("done")
            m = ev.get("metrics") or {}
            if m.get("seconds") is not None:
                self._log(f"{status} at step {ev.get('step')} after {format_seconds(m['seconds'])}"
                          + (f", final train loss {m['train_loss']:.4f}" if m.get("train_loss") is not None else ""))

    def _update_eta(self, step: int, total: int, t) -> None:
        now = float(t) if t else time.time()
        if self._first_step is None:
            self._first_step = (now, step)
            self.labels["eta"].setText("estimating…")
            return
        t0, s0 = self._first_step
        if step > s0 and total:
            per_step = (now - t0) / (step - s0)
            self.labels["eta"].setText(f"{format_seconds(per_step * (total - step))} left ({per_step:.2f} s/step)")

    def _finished(self, code: int, crashed: bool) -> None:
        self.cancel_button.setText("Cancel (checkpoint, then stop)")
        fin = self.finished_event
        status = fin.get("status") if fin else None
        checkpoints = list_checkpoints(Path(self.run_dir)) if self.run_dir else []
        resumable = f" The run keeps its last checkpoint ({checkpoints[-1].name}); press Resume to continue." if checkpoints else \
            " No checkpoint was written yet; Start runs it again."
        if self.error_event is not None:
            ev = self.error_event
            self._set_status("failed")
            self.dialog = show_engine_error(self, "Training failed", ev.get("message", "The engine reported an error."),
                                            ev.get("hint", "") + ("" if not checkpoints else f" ({checkpoints[-1].name} is kept.)"))
            status = "failed"
        elif status is None and (crashed or code != 0):
            if self.process.killed:
                self._set_status("interrupted")
                self._log("The engine did not stop in time and was killed." + resumable)
                status = "interrupted"
            elif code == 2 and not crashed and self.process.cli_error():
                # a user error before training began: the engine's one-line message says what to fix
                self._set_status("failed")
                self.dialog = show_engine_error(self, "Training could not start", self.process.cli_error())
                status = "failed"
            else:
                self._set_status("crashed")
                self.dialog = show_engine_error(
                    self, "The training process stopped unexpectedly",
                    f"engine train ended with exit code {code} without reporting why.{resumable}",
                    "Check free memory and disk space, then Resume.", "\n".join(self.process.stderr_tail))
                status = "crashed"
        elif status is None:
            status = "completed"
            self._set_status(status)
        self.running_changed.emit(False)
        self._update_buttons()
        self.run_finished.emit(self.run_dir, status)

    # replay ------------------------------------------------------------------------
    def load_run(self, run_dir: str | Path) -> None:
        """Show a past run: replay its events.jsonl into the plot and labels (no dialogs)."""
        if self.process.is_running():
            return
        self.run_dir = str(run_dir)
        self.clear_plots()
        self.log.clear()
        self.labels["eta"].setText("—")
        events_file = Path(run_dir) / "events.jsonl"
        events = read_events(events_file) if events_file.is_file() else []
        self.finished_event = self.error_event = None
        self._set_status("interrupted" if events else "new")
        for ev in events:
            self.handle_event(ev, live=False)
        if self.status != "completed" and list_checkpoints(Path(self.run_dir)):
            self.command.setText(display_command(["train", "--resume", self.run_dir, "--events", "-"]))
        else:  # what Start would run: this run's config into a new folder
            self._refresh_command()
        self.plot.redraw()
        if self.metrics_plot is not None and self.metrics_plot.isVisibleTo(self):
            self.metrics_plot.redraw()
        self._update_buttons()

    # helpers -------------------------------------------------------------------------
    def _set_status(self, status: str) -> None:
        self.status = status
        colours = {"completed": "#1a7f37", "failed": "#d1242f", "crashed": "#d1242f", "interrupted": "#9a6700"}
        text = {"interrupted": "stopped — resumable", "crashed": "crashed — resumable"}.get(status, status)
        self.labels["status"].setText(text)
        self.labels["status"].setStyleSheet(f"color: {colours.get(status, 'palette(text)')}; font-weight: bold;")

    def _log(self, text: str) -> None:
        self.log.appendPlainText(text)

    def _update_buttons(self) -> None:
        running = self.process.is_running()
        self.start_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        can_resume = bool(self.run_dir) and bool(list_checkpoints(Path(self.run_dir))) and self.status != "completed"
        self.resume_button.setEnabled(not running and can_resume)
        self.open_button.setEnabled(bool(self.run_dir) and Path(self.run_dir).is_dir())
