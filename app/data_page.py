"""Wizard step 2: the training data, checked the way training will read it.

Pick or drop a file; the engine's data API (engine.data.inspect) detects the
format, renders every record with the model's chat template, masks the prompt
parts and reports: record count, token-length histogram against max_len, how
many records get truncated, the share of tokens that carry loss, one rendered
sample with the masked parts marked, and malformed records with file:line.
Preference data (prompt / chosen / rejected) and KTO records (prompt /
completion / label) show their pair instead (app/pair_view.py), and the page
says which training stages can use the file (the inspection's `stages`).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (QComboBox, QFileDialog, QFormLayout, QGridLayout, QGroupBox, QHBoxLayout, QLabel,
                               QListWidget, QSpinBox, QStackedWidget, QVBoxLayout, QWidget)

from app.data_probe import inspect_file
from app.drop_zone import DropZone
from app.field_editor import FieldEditor
from app.image_strip import ImageStrip
from app.masked_sample_view import MaskedSampleView
from app.page_header import PageHeader
from app.pair_view import PairView
from app.refresh_when_shown import RefreshWhenShown
from app.stage_info import report_field, report_stages
from app.worker import run_in_thread
from engine.config import FIELDS
from engine.paths import DATASETS_DIR

# Data kinds shown as a pair (the inspection's `pair`) rather than one rendered sample.
PAIR_KINDS = ("preference", "kto")

# Changing any of these re-reads the data.
WATCHED = ("data.path", "data.format", "data.columns", "data.on_error", "data.system_prompt",
           "model.name_or_path", "sequence.max_len")


class DataPage(RefreshWhenShown, QWidget):
    """File picker / drop zone, format override, stats, histogram, masked sample, errors."""

    title = "Data"

    def __init__(self, state, settings, parent=None):
        super().__init__(parent)
        self.state, self.settings = state, settings
        self.report = None
        self._probe_id = 0
        lay = QVBoxLayout(self)
        lay.addWidget(PageHeader("2 · Data", "Your examples: questions and answers, conversations, raw text, or preference pairs "
                                 "(a chosen and a rejected answer per prompt). They are rendered with the model's chat "
                                 "template; only the answers carry loss."))
        self.drop = DropZone()
        lay.addWidget(self.drop)
        opts = QHBoxLayout()
        self.samples = QComboBox()
        self.samples.addItem("Sample data sets…")
        for f in sorted(DATASETS_DIR.glob("*.jsonl")):
            self.samples.addItem(f.name, str(f))
        opts.addWidget(self.samples)
        self.editors = {}
        for key, label in (("data.format", "Format"), ("data.on_error", "Bad records"), ("data.columns", "Columns")):
            ed = FieldEditor(FIELDS[key]).bind(state)
            self.editors[key] = ed
            lab = QLabel(label + ":")
            lab.setToolTip(ed.toolTip())
            opts.addWidget(lab)
            opts.addWidget(ed, 2 if key == "data.columns" else 0)
        lay.addLayout(opts)

        self.status = QLabel("No data yet.")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        lay.addWidget(self.status)

        grid = QGridLayout()
        stats = QGroupBox("What training will see")
        self.form = QFormLayout(stats)
        self.stats: dict[str, QLabel] = {}
        for key, label in (("format", "Format"), ("records", "Records"), ("lengths", "Tokens per record"),
                           ("max_len", "Longer than max_len"), ("trained", "Tokens with loss"),
                           ("stages", "Usable by")):
            v = QLabel("—")
            v.setWordWrap(True)
            self.stats[key] = v
            self.form.addRow(label + ":", v)
        grid.addWidget(stats, 0, 0)
        hist_box = QGroupBox("Token lengths")
        hl = QVBoxLayout(hist_box)
        self._histogram = None  # matplotlib is imported on first use (keeps start-up fast)
        self.hist_layout = hl
        grid.addWidget(hist_box, 0, 1)
        grid.setColumnStretch(0, 2)
        grid.setColumnStretch(1, 3)
        lay.addLayout(grid)

        self.sample_box = sample_box = QGroupBox("A rendered sample")
        sl = QVBoxLayout(sample_box)
        top = QHBoxLayout()
        top.addWidget(QLabel("Record #"))
        self.sample_index = QSpinBox()
        self.sample_index.setRange(1, 1)
        top.addWidget(self.sample_index)
        legend = QLabel(MaskedSampleView.legend)
        top.addWidget(legend, 1, Qt.AlignmentFlag.AlignRight)
        sl.addLayout(top)
        self.images = ImageStrip()  # the sample's images, for image + text records
        self.images.setVisible(False)
        sl.addWidget(self.images)
        self.sample = MaskedSampleView()
        self.sample.setMinimumHeight(110)
        self.pair = PairView()
        self.sample_stack = QStackedWidget()
        self.sample_stack.addWidget(self.sample)
        self.sample_stack.addWidget(self.pair)
        sl.addWidget(self.sample_stack)
        lay.addWidget(sample_box, 1)

        self.errors = QListWidget()
        self.errors.setMaximumHeight(90)
        self.errors.setVisible(False)
        self.errors.setStyleSheet("color: #d1242f;")
        lay.addWidget(self.errors)

        self.debounce = QTimer(self)
        self.debounce.setSingleShot(True)
        self.debounce.setInterval(400)
        self.debounce.timeout.connect(self.inspect)
        self.drop.file_chosen.connect(self.set_path)
        self.drop.browse_requested.connect(self._browse)
        self.samples.activated.connect(self._sample_set_chosen)
        self.sample_index.valueChanged.connect(lambda *_: self.debounce.start())
        state.value_changed.connect(lambda key: key in WATCHED and self._changed(key))
        if state.get("data.path"):
            self.drop.show_path(state.get("data.path"))
            self._stale = True

    @property
    def histogram(self):
        """The token-length canvas, built the first time it is needed."""
        if self._histogram is None:
            from app.token_histogram import TokenHistogram

            self._histogram = TokenHistogram()
            self.hist_layout.addWidget(self._histogram)
        return self._histogram

    # choosing -----------------------------------------------------------------
    def set_path(self, path: str) -> None:
        """Use this data file (from a drop, the dialog, a sample set or a reopened run)."""
        path = str(Path(path).expanduser().resolve())
        self.settings.set_last_folder("data", path)
        self.state.set("data.path", path)

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Training data", self.settings.last_folder("data"),
                                              "Data (*.jsonl *.json *.csv *.parquet);;All files (*)")
        if path:
            self.set_path(path)

    def _sample_set_chosen(self, index: int) -> None:
        path = self.samples.itemData(index)
        if path:
            self.set_path(path)
        self.samples.setCurrentIndex(0)

    def _changed(self, key: str) -> None:
        if key == "data.path":
            self.drop.show_path(self.state.get("data.path"))
            self.sample_index.setValue(1)
        if self.state.get("data.path"):
            self.request_refresh()

    def showEvent(self, event) -> None:
        self.histogram  # noqa: B018  (build the canvas before the page is seen)
        super().showEvent(event)

    # inspecting ------------------------------------------------------------------
    def inspect(self) -> None:
        """Read the data in a worker thread with the current model, max_len and format settings."""
        self.debounce.stop()
        self._stale = False
        path = self.state.get("data.path")
        if not path:
            return
        self._probe_id += 1
        probe = self._probe_id
        s = self.state
        self.status.setText(f"Reading {Path(path).name} with the tokenizer of {s.get('model.name_or_path')}…")
        self.status.setStyleSheet("")
        run_in_thread(inspect_file, path, s.get("model.name_or_path"), int(s.get("sequence.max_len") or 1024),
                      s.get("data.format"), s.get("data.columns"), s.get("data.system_prompt"), s.get("data.on_error"),
                      self.sample_index.value() - 1,
                      on_done=lambda r: self._show(probe, r), on_failed=lambda m: self._fail(probe, m), context=self)

    def _fail(self, probe: int, message: str) -> None:
        if probe != self._probe_id:
            return
        self.report = None
        self.status.setText("This data cannot be used yet:")
        self.status.setStyleSheet("color: #d1242f; font-weight: bold;")
        self.errors.clear()
        self.errors.addItem(message)
        self.errors.item(0).setToolTip(message)
        self.errors.setVisible(True)
        for v in self.stats.values():
            v.setText("—")
        self.histogram.plot([], 0)
        self.sample.show_segments([])
        self.sample_stack.setCurrentWidget(self.sample)
        self.state.set_data_report(None)

    def _show(self, probe: int, r) -> None:
        if probe != self._probe_id:
            return
        if hasattr(r, "images") and hasattr(r, "image_tokens_per_image"):
            return self._show_images(r)
        self.images.setVisible(False)
        self.report = r
        st = r.stats()
        self.status.setText(f"{r.records} records ready from {Path(r.path).name}.")
        self.status.setStyleSheet("color: #1a7f37;")
        detected = "detected" if self.state.get("data.format") == "auto" else "set"
        self.stats["format"].setText(f"{r.format} ({r.kind}, {detected})")
        skipped = f", {len(r.skipped)} malformed skipped" if r.skipped else ""
        self.stats["records"].setText(f"{r.records}{skipped}")
        self.stats["lengths"].setText(f"min {st.get('min')} · median {st.get('median')} · p95 {st.get('p95')} · max {st.get('max')}")
        self.stats["max_len"].setText(f"{r.over_max_len} of {r.records} (max_len {r.max_len}; truncated keeping EOS), "
                                      f"{r.dropped} dropped")
        self.stats["max_len"].setStyleSheet("color: #9a6700;" if r.over_max_len else "")
        pct = 100 * r.trained_tokens / max(1, r.total_tokens)
        self.stats["trained"].setText(f"{r.trained_tokens:,} of {r.total_tokens:,} ({pct:.1f}%)")
        self.histogram.plot(r.lengths, r.max_len)
        self.sample_index.blockSignals(True)
        self.sample_index.setRange(1, max(1, r.records))
        self.sample_index.blockSignals(False)
        self._show_sample(r)
        self.errors.clear()
        for loc, why in r.skipped:
            self.errors.addItem(f"{loc}: {why}")
        self.errors.setVisible(bool(r.skipped))
        self.state.set_data_report(r)

    def _show_images(self, r) -> None:
        """Image + text records (engine/vision/inspect.py): counts, sizes, the sample's thumbnails and text."""
        self.report = r
        self.status.setText(f"{r.records} image + text records ready from {Path(r.path).name}.")
        self.status.setStyleSheet("color: #1a7f37;")
        self.stats["format"].setText(f"images + conversations ({r.images} images, {r.smallest[0]}x{r.smallest[1]} to "
                                     f"{r.largest[0]}x{r.largest[1]})")
        skipped = f", {len(r.skipped)} bad skipped" if r.skipped else ""
        self.stats["records"].setText(f"{r.records}{skipped}")
        if r.image_tokens_per_image is None:
            self.stats["lengths"].setText("choose a vision-language model to count image tokens")
        else:
            self.stats["lengths"].setText(f"max {r.length_max} · mean {r.length_mean:.0f} "
                                          f"({r.image_tokens_per_image:.0f} tokens per image)")
        self.stats["max_len"].setText(f"{r.over_max_len} of {r.records} (dropped: an image's tokens cannot be cut)")
        self.stats["trained"].setText("the answers")
        self.stats["stages"].setText(", ".join(r.stages))
        self.histogram.plot([], 0)
        s = r.sample
        self.sample_index.blockSignals(True)
        self.sample_index.setRange(1, max(1, r.records))
        self.sample_index.blockSignals(False)
        per_image = s.get("image_tokens", 0) // max(1, len(s["images"])) if "image_tokens" in s else None
        self.images.show_images(s["images"], per_image)
        text = s.get("text") or "\n".join(f"{m['role']}: " + "".join(p.get("text", "<image>") for p in m["content"])
                                           for m in s["messages"])
        trained = s.get("trained") or []
        segments, rest = [], text
        for answer in trained:  # the masked sample view takes (trained?, text) segments
            head, found, rest = rest.partition(answer)
            segments += [(False, head), (True, answer)] if found else [(False, head)]
        segments.append((False, rest))
        self.sample.show_segments([seg for seg in segments if seg[1]])
        self.sample_stack.setCurrentWidget(self.sample)
        self.sample_box.setTitle("A rendered sample with its images")
        self.errors.clear()
        for loc, why in r.skipped:
            self.errors.addItem(f"{loc}: {why}")
        self.errors.setVisible(bool(r.skipped))
        self.state.set_data_report(r)

    def _show_sample(self, r) -> None:
        """One rendered sample, or the pair for preference / KTO data; and which stages can use the file."""
        kind, pair = report_field(r, "kind", ""), report_field(r, "pair")
        stages = report_stages(r)
        self.stats["stages"].setText(", ".join(stages) if stages else "no training stage of this engine")
        self.stats["stages"].setToolTip("The training stages (Method page) that can train on this kind of data.")
        if kind in PAIR_KINDS and isinstance(pair, dict):
            self.pair.show_pair(pair)
            self.sample_stack.setCurrentWidget(self.pair)
            self.sample_box.setTitle("A rendered pair" if kind == "preference" else "A rendered KTO record")
        else:
            self.sample.show_segments(r.sample_segments)
            self.sample_stack.setCurrentWidget(self.sample)
            self.sample_box.setTitle("A rendered sample")
