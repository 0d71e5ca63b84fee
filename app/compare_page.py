"""The Compare view: train several methods on the wizard's model, data and budget, and compare them.

    dialog = CompareDialog(state, settings)     # opened by the Method page's "Compare methods…"
    dialog.compare_args()  # ['compare', '<folder>/base-config.yaml', '--methods', 'lora,ia3', '--out', '<folder>', ...]

It runs the same command a person would type (`engine compare CONFIG --methods a,b --out DIR
[--heldout FILE --answers]`) as a child process (app/engine_process.py), so Cancel really stops it
(the engine checkpoints the method in training) and Start again resumes: finished methods are kept.
The wizard's settings are written to <folder>/base-config.yaml (the exact resolved config: a
comparison needs a config file, and the wizard may have no preset). The engine rewrites
<folder>/compare.json after every method; the view re-reads it and fills the table and the plot,
while the method in training adds its loss points live from the progress lines.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from PySide6.QtCore import QCoreApplication, Qt, QTimer
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (QCheckBox, QDialog, QFileDialog, QGridLayout, QGroupBox, QHBoxLayout, QLabel,
                               QLineEdit, QPlainTextEdit, QProgressBar, QPushButton, QSplitter, QTreeWidget,
                               QTreeWidgetItem, QVBoxLayout, QWidget)

from app.compare_plot import CompareLossPlot
from app.compare_table import CompareTable, read_rows
from app.engine_command import display_command
from app.engine_process import EngineProcess
from app.method_chooser import GROUP_TITLES, export_text
from engine.errors import EdgetuneError
from engine.train.methods import methods_by_group

ROWS_FILE = "compare.json"
CONFIG_FILE = "base-config.yaml"
# `engine compare`'s own default choice: one or two of each family, all cheap on a CPU
DEFAULT_METHODS = ("lora", "qlora", "dora", "ia3", "prompt", "prefix", "adapter_serial")
POLL_MS = 1000
METHOD_LINE = re.compile(r"^\[(\d+)/(\d+)\] ([\w.-]+)")  # "[2/5] dora (reparametrisation, lr ...)" / "[1/5] lora: kept"
STEP_LINE = re.compile(r"^\s*step (\d+)/(\S+)\s+loss (\S+)")  # "  step 10/40  loss 2.3012"


def compare_args(config: str, methods: list[str], out: str, heldout: str = "", answers: bool = False) -> list[str]:
    """`engine compare` arguments for these choices."""
    args = ["compare", str(config), "--methods", ",".join(methods), "--out", str(out)]
    if heldout:
        args += ["--heldout", str(heldout)]
        if answers:
            args.append("--answers")
    return args


def read_compare(folder: str | Path) -> dict:
    """compare.json of a comparison folder ({} when there is none yet, or it is being replaced)."""
    path = Path(folder) / ROWS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class CompareDialog(QDialog):
    """Tick methods, pick held-out data, run `engine compare`, watch the table and curves fill."""

    def __init__(self, state, settings=None, parent=None):
        super().__init__(parent)
        self.state, self.settings = state, settings
        self.setWindowTitle("Compare fine-tuning methods")
        self.resize(1150, 760)
        self.process = EngineProcess(self)
        self.running_method = ""
        self.progress_at = (0, 0)  # (method index, methods) of the last "[i/n]" line
        self._mtime = 0.0
        lay = QHBoxLayout(self)

        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        intro = QLabel("Each ticked method trains on the model, data and budget set in the wizard (same steps or "
                       "epochs, same seed; each at its recommended learning rate), one after another. Finished "
                       "methods are kept: Cancel, then Start again to resume.")
        intro.setWordWrap(True)
        ll.addWidget(intro)
        box = QGroupBox("Methods")
        bl = QVBoxLayout(box)
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Method", "Exports"])
        self.method_items: dict[str, QTreeWidgetItem] = {}
        for group, methods in methods_by_group().items():
            if not methods:
                continue
            head = QTreeWidgetItem(self.tree, [GROUP_TITLES[group]])
            head.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsAutoTristate)
            head.setToolTip(0, GROUP_TITLES[group])
            for m in methods:
                item = QTreeWidgetItem(head, [m.name, export_text(m).removeprefix("exports: ")])
                item.setFlags(Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(0, Qt.CheckState.Checked if m.name in DEFAULT_METHODS else Qt.CheckState.Unchecked)
                item.setToolTip(0, m.summary)
                item.setToolTip(1, m.export.why_not or export_text(m))
                self.method_items[m.name] = item
        self.tree.expandAll()
        self.tree.resizeColumnToContents(0)
        self.tree.itemChanged.connect(lambda *_: self._refresh_command())
        bl.addWidget(self.tree)
        ll.addWidget(box, 1)

        form = QGridLayout()
        self.heldout = QLineEdit()
        self.heldout.setPlaceholderText("(optional) held-out data file, same format as the training data")
        self.heldout.setToolTip("Its loss is measured for the base model and for every method (--heldout).")
        browse_heldout = QPushButton("Browse…")
        browse_heldout.clicked.connect(self._browse_heldout)
        form.addWidget(QLabel("Held-out data:"), 0, 0)
        form.addWidget(self.heldout, 0, 1)
        form.addWidget(browse_heldout, 0, 2)
        self.answers = QCheckBox("Also ask its questions and score the answers (--answers)")
        self.answers.setToolTip("Greedy answers to the held-out questions, counted correct when they contain the "
                                "record's `expect` (or output), as engine eval --answers does.")
        form.addWidget(self.answers, 1, 1, 1, 2)
        self.folder = QLineEdit(str(self.default_folder()))
        self.folder.setToolTip("The comparison folder: compare.json/.md/.html/.png and one run folder per method.")
        browse_folder = QPushButton("Browse…")
        browse_folder.clicked.connect(self._browse_folder)
        form.addWidget(QLabel("Folder:"), 2, 0)
        form.addWidget(self.folder, 2, 1)
        form.addWidget(browse_folder, 2, 2)
        ll.addLayout(form)
        self.budget = QLabel("")
        self.budget.setWordWrap(True)
        self.budget.setStyleSheet("color: palette(placeholder-text);")
        ll.addWidget(self.budget)
        self.command = QLabel("")
        self.command.setWordWrap(True)
        self.command.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.command.setFont(QFont("monospace", 8))
        ll.addWidget(self.command)
        buttons = QHBoxLayout()
        self.start_button = QPushButton("Start")
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.cancel_button)
        ll.addLayout(buttons)

        right = QWidget()
        rl = QVBoxLayout(right)
        rl.setContentsMargins(0, 0, 0, 0)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        rl.addWidget(self.status)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        rl.addWidget(self.progress)
        split = QSplitter(Qt.Orientation.Vertical)
        self.table = CompareTable()
        self.plot = CompareLossPlot()
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(2000)
        split.addWidget(self.table)
        split.addWidget(self.plot)
        split.addWidget(self.log)
        split.setSizes([260, 300, 120])
        rl.addWidget(split, 1)

        outer = QSplitter(Qt.Orientation.Horizontal)
        outer.addWidget(left)
        outer.addWidget(right)
        outer.setSizes([380, 770])
        lay.addWidget(outer)

        self.poll = QTimer(self)
        self.poll.setInterval(POLL_MS)
        self.poll.timeout.connect(self.reload)
        self.process.output.connect(self.handle_line)
        self.process.finished.connect(self._finished)
        self.heldout.textChanged.connect(self._refresh_command)
        self.answers.toggled.connect(self._refresh_command)
        self.folder.textChanged.connect(self._folder_changed)
        self._default = self.folder.text()
        if QCoreApplication.instance() is not None:
            QCoreApplication.instance().aboutToQuit.connect(self.shutdown)
        state.value_changed.connect(self._value_changed)
        self._folder_changed()

    # choices ----------------------------------------------------------------------------------
    def default_folder(self) -> Path:
        """<runs dir>/<model>-compare: reopening the view finds the comparison made earlier."""
        runs = self.settings.runs_dir if self.settings is not None else Path.cwd() / "runs"
        model = Path(self.state.get("model.name_or_path").rstrip("/")).name.replace(".gguf", "") or "model"
        return Path(runs) / f"{model}-compare"

    def methods(self) -> list[str]:
        """The ticked methods, in the registry's order."""
        return [m for m, item in self.method_items.items() if item.checkState(0) == Qt.CheckState.Checked]

    def set_methods(self, names) -> None:
        """Tick exactly these methods."""
        for m, item in self.method_items.items():
            item.setCheckState(0, Qt.CheckState.Checked if m in names else Qt.CheckState.Unchecked)

    def compare_args(self) -> list[str]:
        """The command Start runs (its config file is written by Start)."""
        out = self.folder.text().strip()
        answers = self.answers.isChecked() and bool(self.heldout.text().strip())
        return compare_args(str(Path(out) / CONFIG_FILE), self.methods(), out, self.heldout.text().strip(), answers)

    def _value_changed(self, key: str) -> None:
        if key == "model.name_or_path" and self.folder.text() == self._default and not self.process.is_running():
            self._default = str(self.default_folder())  # another model: its own comparison (unless a folder was chosen)
            self.folder.setText(self._default)
        self._refresh_command()

    def _browse_heldout(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Held-out data", str(Path(self.state.get("data.path") or ".").parent),
                                              "Data (*.jsonl *.json *.csv *.parquet *.txt);;All files (*)")
        if path:
            self.heldout.setText(path)

    def _browse_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Comparison folder", self.folder.text())
        if path:
            self.folder.setText(path)

    def _folder_changed(self) -> None:
        self._mtime = 0.0
        self.plot.clear()
        self.reload()
        data = read_compare(self.folder.text().strip()) if self.folder.text().strip() else {}
        rows = read_rows(data)
        if rows and not self.process.is_running():  # an earlier comparison: its choices, so Resume continues it
            self.set_methods([r.method for r in rows])
            held = str((data.get("meta") or {}).get("heldout") or "")
            self.heldout.setText(held)
            self.answers.setChecked(bool(held) and any(r.answers_total is not None for r in rows))
            done = sum(r.status == "completed" for r in rows)
            self._set_status(f"This folder holds a comparison of {len(rows)} method(s), {done} completed. Resume runs "
                             "the ticked methods, keeping the finished ones.")
        elif not self.process.is_running():
            self._set_status("Tick the methods to compare, then Start.")
        self._refresh_command()

    def _refresh_command(self) -> None:
        self.answers.setEnabled(bool(self.heldout.text().strip()))
        v = self.state.get
        steps = v("optim.max_steps")
        budget = f"{steps} optimizer steps" if steps and steps not in ("-1", "0") else f"{v('optim.epochs')} epochs"
        self.budget.setText(f"Model {v('model.name_or_path')}, data {Path(v('data.path')).name or '(none chosen)'}, "
                            f"{budget} per method, seed {v('seed')}, lr {v('optim.lr')} for LoRA (scaled per method).")
        if not self.process.is_running():
            self.command.setText(display_command(self.compare_args()))
        self._update_buttons()

    def _update_buttons(self) -> None:
        running = self.process.is_running()
        done = read_rows(read_compare(self.folder.text().strip())) if self.folder.text().strip() else []
        self.start_button.setText("Resume" if done and not running else "Start")
        self.start_button.setEnabled(not running and bool(self.methods()))
        self.cancel_button.setEnabled(running)
        self.cancel_button.setText("Stop now" if running and self.process.cancel_requested else "Cancel")
        for w in (self.tree, self.heldout, self.answers, self.folder):
            w.setEnabled(not running and (w is not self.answers or bool(self.heldout.text().strip())))

    # running -----------------------------------------------------------------------------------
    def check(self) -> str:
        """Why the comparison cannot start ('' when it can)."""
        if not self.methods():
            return "Tick at least one method."
        if not self.state.get("data.path"):
            return "Choose the training data on the Data page first."
        held = self.heldout.text().strip()
        if held and not Path(held).is_file():
            return f"Held-out data {held}: no such file. Choose an existing file, or clear the field."
        if not self.folder.text().strip():
            return "Choose a folder for the comparison."
        return ""

    def start(self) -> bool:
        """Write the wizard's config into the folder and start (or resume) `engine compare`."""
        if self.process.is_running():
            return False
        problem = self.check()
        try:
            cfg = None if problem else self.state.resolved_config()
        except EdgetuneError as e:
            problem = f"Invalid setting: {e} Fix it on the Method & fit page."
        if problem:
            self._set_status(problem, "#d1242f")
            return False
        from engine.config import save_config

        out = Path(self.folder.text().strip())
        save_config(cfg, out / CONFIG_FILE)
        args = self.compare_args()
        self.log.appendPlainText(f"$ {display_command(args)}")
        self.command.setText(display_command(args))
        self.progress_at, self.running_method = (0, len(self.methods())), ""
        self.progress.setValue(0)
        self._set_status("Starting the engine…")
        self.process.start(args, cwd=str(Path.cwd()))
        self.poll.start()
        self._update_buttons()
        return True

    def cancel(self) -> None:
        """First press: the method in training checkpoints, then the comparison stops. Second: stop now."""
        if not self.process.is_running():
            return
        if self.process.cancel_requested:
            self.log.appendPlainText("Cancel pressed again: stopping now.")
        else:
            self.log.appendPlainText("Cancel: the method in training saves a checkpoint, then the comparison stops…")
        self._set_status("Stopping…")
        self.process.cancel()
        self._update_buttons()

    def handle_line(self, text: str) -> None:
        """One line of `engine compare`'s output: progress, a live loss point, or just the log."""
        self.log.appendPlainText(text)
        m = METHOD_LINE.match(text)
        if m:
            i, n, name = int(m.group(1)), int(m.group(2)), m.group(3)
            self.progress_at, self.running_method = (i, n), name
            self.progress.setValue(int(1000 * (i - 1) / max(n, 1)))
            self._set_status(f"Method {i} of {n}: <b>{name}</b>" + (" (kept from before)" if ": kept" in text else "…"))
            self.reload()
            return
        m = STEP_LINE.match(text)
        if m and self.running_method:
            step, total = int(m.group(1)), m.group(2)
            try:
                loss = float(m.group(3))
            except ValueError:
                return
            self.plot.add_point(self.running_method, step, loss)
            i, n = self.progress_at
            if total.isdigit() and int(total) > 0 and n:
                self.progress.setValue(int(1000 * (i - 1 + min(step / int(total), 1.0)) / n))
            self._set_status(f"Method {i} of {n}: <b>{self.running_method}</b>, step {step}/{total}, loss {loss:.4f}")

    def reload(self) -> None:
        """Re-read compare.json when it changed: table and finished methods' curves."""
        folder = self.folder.text().strip()
        path = Path(folder) / ROWS_FILE if folder else None
        try:
            mtime = path.stat().st_mtime if path is not None else 0.0
        except OSError:
            mtime = 0.0
        if mtime and mtime == self._mtime:
            if self.process.is_running():
                self._show_table()
            return
        self._mtime = mtime
        self._show_table()

    def _show_table(self) -> None:
        rows = read_rows(read_compare(self.folder.text().strip())) if self.folder.text().strip() else []
        running = self.process.is_running()
        for row in rows:
            if row.method != self.running_method or not running:
                self.plot.set_curve(row.method, row.losses)
        self.table.show_rows(rows, order=tuple(self.methods()) if running else (),
                             running=self.running_method if running else "")

    def _finished(self, code: int, crashed: bool) -> None:
        self.poll.stop()
        self.running_method = ""
        self._mtime = 0.0
        self.reload()
        rows = self.table.rows()
        if self.process.cancel_requested:
            self._set_status("Stopped. Press Resume to continue: finished methods are kept, the interrupted one "
                             "resumes from its checkpoint.", "#9a6700")
        elif code == 0 and not crashed:
            self.progress.setValue(1000)
            failed = [r.method for r in rows if r.status != "completed"]
            out = Path(self.folder.text().strip())
            self._set_status(f"Done: {len(rows) - len(failed)} method(s) measured"
                             + (f"; not completed: {', '.join(failed)} (see the table)" if failed else "")
                             + f". Report: {out / 'compare.html'}", "#1a7f37" if not failed else "#9a6700")
        else:
            why = self.process.cli_error() or (self.process.stderr_tail[-1] if self.process.stderr_tail else f"exit code {code}")
            self._set_status(f"The comparison stopped: {why}", "#d1242f")
        self._update_buttons()

    def shutdown(self) -> None:
        """The app quits: the method in training checkpoints, then the comparison stops (Resume continues it)."""
        if self.process.is_running():
            self.process.cancel()
            self.process.wait(self.process.grace_ms)
            self.process.kill()

    def _set_status(self, text: str, colour: str = "") -> None:
        self.status.setText(text)
        self.status.setStyleSheet(f"color: {colour};" if colour else "")
