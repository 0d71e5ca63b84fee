"""Wizard step 5: turn the run into files for llama.cpp / Ollama (GGUF) and phones (ONNX).

Each export is `engine export gguf|onnx SOURCE ... --events -` in a child
process; its export_progress events drive the progress bar. Afterwards the
page shows the exporters' verification (verify.json: token ids, logits against
the trained model, stopping at end-of-turn), the Ollama Modelfile, and opens the
folder. `auto` asks the GGUF quant advisor to pick the smallest type that keeps
quality within its bound.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QFontDatabase
from PySide6.QtWidgets import (QCheckBox, QComboBox, QFileDialog, QFormLayout, QGridLayout, QGroupBox, QHBoxLayout,
                               QLabel, QPlainTextEdit, QProgressBar, QPushButton, QSplitter, QTabWidget, QVBoxLayout,
                               QWidget)

from app.engine_command import display_command
from app.engine_process import EngineProcess
from app.error_dialog import show_engine_error
from app.event_compat import normalise
from app.page_header import PageHeader
from app.verify_table import VerifyTable
from engine.config import FIELDS
from engine.config.quant_types import DIRECT_TYPES, LLAMA_QUANT_TYPES
from engine.runs import exports_dir_for, is_run_dir

# The types most people want, checked by the advisor's bound; the rest under "more".
COMMON_QUANTS = ("auto", "q8_0", "q4_k_m", "q5_k_m", "q6_k", "f16")
QUANT_NOTES = {"auto": "advisor: smallest type within the quality bound", "q8_0": "8-bit, near lossless",
               "q4_k_m": "~4.9 bits/weight, smallest common", "q5_k_m": "~5.7 bits/weight", "q6_k": "~6.6 bits/weight",
               "f16": "16-bit, reference quality"}


def _size(path: Path) -> int:
    """Bytes in a file, or in every file under a folder."""
    return path.stat().st_size if path.is_file() else sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


class ExportPage(QWidget):
    """GGUF quant choices, ONNX precision/target, progress, verification, Modelfile, Open folder."""

    title = "Export"
    exported = Signal(str)  # the exports folder, after every requested export finished

    def __init__(self, state, settings, parent=None):
        super().__init__(parent)
        self.state, self.settings = state, settings
        self.process = EngineProcess(self)
        self.process.event.connect(self.handle_event)
        self.process.output.connect(lambda t: self.log.appendPlainText(t))
        self.process.finished.connect(self._job_finished)
        self.jobs: list[list[str]] = []
        self.results: list[tuple[str, str]] = []  # (target, status)
        self.error_event: dict | None = None
        self.dialog = None

        lay = QVBoxLayout(self)
        lay.addWidget(PageHeader("5 · Export", "Make files that run without Python: a GGUF for llama.cpp, Ollama and "
                                 "LM Studio, and an ONNX model for phones and edge devices. Every export is verified "
                                 "against the trained model."))
        src = QHBoxLayout()
        src.addWidget(QLabel("Source:"))
        self.source = QComboBox()
        self.source.setEditable(True)
        self.source.setToolTip("A run folder (its adapter is merged first), a merged/HF model folder or a model spec.")
        src.addWidget(self.source, 1)
        self.browse = QPushButton("Browse…")
        src.addWidget(self.browse)
        lay.addLayout(src)

        grid = QGridLayout()
        gg = QGroupBox("GGUF (llama.cpp, Ollama, LM Studio)")
        gl = QVBoxLayout(gg)
        self.gguf_on = QCheckBox("Export GGUF")
        self.gguf_on.setChecked(True)
        gl.addWidget(self.gguf_on)
        self.quant_boxes: dict[str, QCheckBox] = {}
        qgrid = QGridLayout()
        for i, q in enumerate(COMMON_QUANTS):
            cb = QCheckBox(q)
            cb.setToolTip(QUANT_NOTES.get(q, ""))
            self.quant_boxes[q] = cb
            qgrid.addWidget(cb, i // 2, (i % 2) * 2)
            note = QLabel(QUANT_NOTES.get(q, ""))
            note.setStyleSheet("color: palette(placeholder-text);")
            qgrid.addWidget(note, i // 2, (i % 2) * 2 + 1)
        gl.addLayout(qgrid)
        more = QHBoxLayout()
        more.addWidget(QLabel("More types:"))
        self.more_quants = QComboBox()
        self.more_quants.addItem("(none)")
        for q in DIRECT_TYPES + LLAMA_QUANT_TYPES:
            if q not in COMMON_QUANTS:
                self.more_quants.addItem(q)
        self.more_quants.setToolTip(FIELDS["export.gguf_quant"].help)
        more.addWidget(self.more_quants, 1)
        gl.addLayout(more)
        default = state.get("export.gguf_quant")
        (self.quant_boxes.get(default) or self.quant_boxes["auto"]).setChecked(True)
        grid.addWidget(gg, 0, 0)

        og = QGroupBox("ONNX (onnxruntime-genai: phones, edge, DirectML)")
        ol = QFormLayout(og)
        self.onnx_on = QCheckBox("Export ONNX")
        ol.addRow(self.onnx_on)
        self.precision = QComboBox()
        self.precision.addItems(list(FIELDS["export.onnx_precision"].choices))
        self.precision.setCurrentText(state.get("export.onnx_precision"))
        self.precision.setToolTip(FIELDS["export.onnx_precision"].help)
        self.target = QComboBox()
        self.target.addItems(list(FIELDS["export.onnx_device"].choices))
        self.target.setCurrentText(state.get("export.onnx_device"))
        self.target.setToolTip(FIELDS["export.onnx_device"].help)
        ol.addRow("Precision:", self.precision)
        ol.addRow("Target:", self.target)
        grid.addWidget(og, 0, 1)
        lay.addLayout(grid)

        row = QHBoxLayout()
        self.export_button = QPushButton("Export")
        self.export_button.setDefault(True)
        self.cancel_button = QPushButton("Cancel")
        self.open_button = QPushButton("Open folder")
        row.addWidget(self.export_button)
        row.addWidget(self.cancel_button)
        row.addWidget(self.open_button)
        row.addStretch(1)
        lay.addLayout(row)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setFormat("no export running")
        self.progress.setValue(0)  # a bar that was never set hides its text
        lay.addWidget(self.progress)

        split = QSplitter(Qt.Orientation.Vertical)
        tabs = QTabWidget()
        self.verify = VerifyTable()
        tabs.addTab(self.verify, "Verification")
        self.modelfile = QPlainTextEdit()
        self.modelfile.setReadOnly(True)
        self.modelfile.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.modelfile.setPlaceholderText("The Ollama Modelfile appears here after a GGUF export.")
        tabs.addTab(self.modelfile, "Modelfile")
        self.tabs = tabs
        split.addWidget(tabs)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(3000)
        self.log.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        self.log.setPlaceholderText("exporter output")
        split.addWidget(self.log)
        split.setSizes([300, 120])
        lay.addWidget(split, 1)

        self.export_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.open_button.clicked.connect(self.open_folder)
        self.browse.clicked.connect(self._browse)
        state.run_dir_changed.connect(self.set_source)
        self._update_buttons()

    # source -------------------------------------------------------------------------
    def set_source(self, spec: str) -> None:
        if spec and self.source.findText(spec) < 0:
            self.source.insertItem(0, spec)
        self.source.setCurrentText(spec)
        if not self.process.is_running():
            self.log.clear()
            self.show_existing()

    def _browse(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Run or model folder", self.settings.last_folder("export"))
        if path:
            self.settings.set_last_folder("export", path)
            self.set_source(path)

    def out_dir(self) -> Path:
        spec = self.source.currentText().strip()
        out = exports_dir_for(spec)
        return out if out.is_absolute() else self.settings.runs_dir.parent / "exports" / out.name

    # running --------------------------------------------------------------------------
    def quants(self) -> list[str]:
        chosen = [q for q, cb in self.quant_boxes.items() if cb.isChecked()]
        if self.more_quants.currentIndex() > 0:
            chosen.append(self.more_quants.currentText())
        return chosen

    def export_args(self) -> list[list[str]]:
        """The engine commands the current choices make (each is one child process).

        A run folder exports into <run>/exports (the engine's default, so no --out); a plain
        model spec into <runs dir>/../exports/<name>.
        """
        spec = self.source.currentText().strip()
        is_run = is_run_dir(Path(spec))
        jobs = []
        if self.gguf_on.isChecked() and self.quants():
            out = [] if is_run else ["--out", str(self.out_dir())]
            jobs.append(["export", "gguf", spec, "--quant", ",".join(self.quants()), *out, "--events", "-"])
        if self.onnx_on.isChecked():
            precision, target = self.precision.currentText(), self.target.currentText()
            # --out is the ONNX model's own folder (not the folder that holds it)
            out = [] if is_run else ["--out", str(self.out_dir() / f"onnx-{precision}-{target}")]
            jobs.append(["export", "onnx", spec, "--precision", precision, "--target", target, *out,
                         "--events", "-"])
        return jobs

    def start(self) -> bool:
        if self.process.is_running():
            return False
        if not self.source.currentText().strip():
            self.dialog = show_engine_error(self, "Nothing to export", "Train a run first, or choose a run or model folder.")
            return False
        self.jobs = self.export_args()
        if not self.jobs:
            self.dialog = show_engine_error(self, "Nothing to export", "Tick GGUF (with at least one type) or ONNX.")
            return False
        self.results = []
        self.verify.clear_rows()
        self.log.clear()
        self._next_job()
        return True

    def cancel(self) -> None:
        self.jobs = []
        if self.process.is_running():
            self.process.grace_ms = 5000
            self.process.cancel()

    def _next_job(self) -> None:
        if not self.jobs:
            self._all_done()
            return
        args = self.jobs.pop(0)
        self.error_event = None
        self.progress.setValue(0)
        self._stage(f"{args[1].upper()}: starting…")
        self.log.appendPlainText(f"$ {display_command(args)}")
        self.process.start(args)
        self._update_buttons()

    def handle_event(self, raw: dict) -> None:
        ev = normalise(raw)
        t = ev["type"]
        if t == "export_progress":
            self.progress.setValue(int(1000 * max(0.0, min(1.0, float(ev.get("fraction") or 0)))))
            self._stage(f"{str(ev.get('target', '')).upper()}: {ev.get('stage', '')}")
        elif t in ("warning", "message"):
            self.log.appendPlainText(f"{t}: {ev.get('message', '')}" + (f" — {ev['hint']}" if ev.get("hint") else ""))
        elif t == "error":
            self.error_event = ev

    def _job_finished(self, code: int, crashed: bool) -> None:
        target = self.process.args[1] if len(self.process.args) > 1 else "export"
        verify_failed = code == 1 and self.error_event is None and not crashed and any(self.out_dir().rglob("verify*.json"))
        if verify_failed:
            # the files were written, but a check failed: the table says which
            self.dialog = show_engine_error(self, f"{target.upper()} verification failed",
                                            "The export finished, but at least one check failed.",
                                            "See the Verification tab (hover a row for the problems).")
            self.results.append((target, "unverified"))
            self._stage(f"{target.upper()}: written, verification failed")
        elif self.error_event is not None or code != 0:
            msg = (self.error_event or {}).get("message") or self.process.cli_error() or \
                f"engine export {target} ended with exit code {code}."
            hint = (self.error_event or {}).get("hint", "")
            details = "" if self.error_event or self.process.cli_error() else "\n".join(self.process.stderr_tail)
            if not (self.process.cancel_requested and not self.jobs):
                self.dialog = show_engine_error(self, f"{target.upper()} export failed", msg, hint, details)
            self.results.append((target, "failed"))
            self._stage(f"{target.upper()}: failed")
        else:
            self.results.append((target, "done"))
            self.progress.setValue(1000)
            self._stage(f"{target.upper()}: done")
        self._next_job()

    def _stage(self, text: str) -> None:
        self.progress.setFormat(f"{text}  %p%")

    def _listing(self, out: Path) -> str:
        return f"Exports in {out}:\n" + "\n".join(
            f"  {p.name:<28} {_size(p) / 1e6:8.1f} MB" for p in sorted(out.iterdir()) if p.suffix == ".gguf" or p.is_dir())

    def _all_done(self) -> None:
        if self.out_dir().is_dir():
            self.log.appendPlainText(self._listing(self.out_dir()))
        self.show_existing()
        self._update_buttons()
        if any(s == "done" for _, s in self.results):
            self.exported.emit(str(self.out_dir()))

    # results ---------------------------------------------------------------------------
    def show_existing(self) -> None:
        """Load verify.json files and the Modelfile from the exports folder (after an export, or a reopened run)."""
        out = self.out_dir() if self.source.currentText().strip() else None
        self.verify.clear_rows()
        self.modelfile.clear()
        if out is None or not out.is_dir():
            self._update_buttons()
            return
        for vf in sorted(out.rglob("verify*.json"), key=lambda p: (len(p.parts), str(p))):
            rel = vf.parent.relative_to(out)
            # a model in its own folder (ONNX): its size is the folder's, which the report does not carry
            size = None if str(rel) == "." else _size(vf.parent)
            try:
                self.verify.load(vf, "" if str(rel) == "." else f"{rel}: ", size)
            except (OSError, ValueError) as e:
                self.verify.add_rows([([str(vf), "-", "-", "-", "-", "-", "-", "-", f"unreadable: {e}"], False, "")])
        if not self.log.toPlainText().strip():  # a reopened run: say what is there
            self.log.setPlainText(self._listing(out))
        modelfiles = sorted(out.rglob("Modelfile*"), key=lambda p: (len(p.parts), str(p)))
        if modelfiles:
            mf = modelfiles[0]
            name = Path(self.source.currentText().strip()).name or "edgetune-model"
            self.modelfile.setPlainText(f"# {mf}\n# import into Ollama:\n#   ollama create {name} -f {mf}\n\n"
                                        + mf.read_text(encoding="utf-8", errors="replace"))
        self._update_buttons()

    def open_folder(self) -> None:
        out = self.out_dir()
        if out.is_dir():
            QDesktopServices.openUrl(QUrl.fromLocalFile(str(out)))

    def _update_buttons(self) -> None:
        running = self.process.is_running()
        self.export_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)
        self.open_button.setEnabled(bool(self.source.currentText().strip()) and self.out_dir().is_dir())
