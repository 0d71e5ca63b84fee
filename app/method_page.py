"""Wizard step 3: how to fine-tune, and whether it fits this machine.

A preset (assets/presets/*.yaml) sets sensible values for a model size and a
GPU class; the training stage (SFT, DPO, ORPO, SimPO, KTO, reward model; see
app/stage_chooser.py) and the main knobs are shown up front, every other option sits in the
Advanced panel, generated from the run config (labels, widgets and tooltips
come from engine/config/schema.py). `engine plan ... --json` detects this
machine (its GPU via nvidia-smi, else the CPU's RAM) and gives the memory
breakdown, a fits / tight / does-not-fit verdict and what to change; "Plan for"
asks the same question for any GPU in the planner's catalog (or a Mac / a CPU box
of a given size), for people who will train on another machine; the choice is
remembered in the settings.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtWidgets import (QComboBox, QGridLayout, QGroupBox, QHBoxLayout, QLabel, QSizePolicy, QSplitter,
                               QVBoxLayout, QWidget)

from app.config_form import ConfigForm
from app.engine_query import EngineQuery
from app.field_editor import FieldEditor
from app.gpu_chooser import GpuChooser
from app.method_chooser import MethodChooser
from app.page_header import PageHeader
from app.plan_view import PlanView
from app.stage_chooser import StageChooser
from app.wizard_state import PAGE_OWNED
from engine.config import FIELDS
from engine.errors import EdgetuneError
from engine.paths import PRESETS_DIR


def gpu_catalog() -> list[tuple[str, float]]:
    """(name, GB) of every GPU the planner knows (its catalog, no torch)."""
    from engine.plan.gpu_catalog import GPUS

    return sorted(set(GPUS.values()), key=lambda ng: (ng[0].split()[0], ng[1], ng[0]))


# Machines without a discrete GPU that the planner also takes by name (`--gpu 'Apple M2 16GB'`,
# `--gpu 'CPU 32GB'`): Macs train on the GPU's share of unified memory, the rest on the CPU.
OTHER_TARGETS = ("Apple Mac 16GB", "Apple Mac 32GB", "Apple Mac 64GB", "CPU 16GB", "CPU 32GB", "CPU 64GB")


def gpu_name_parses(name: str, gb: float) -> bool:
    """Whether `--gpu NAME` reads back as this catalog entry (some names, e.g. 'A10G', hold a size-like token)."""
    from engine.plan.gpu_catalog import parse_target

    try:
        return parse_target(name).memory_gb == gb
    except EdgetuneError:
        return False


# The knobs people change most, shown up front (everything else is in Advanced).
# (the method, its options and its trainable share are the MethodChooser's: app/method_chooser.py)
MAIN_KNOBS = (("optim.lr", "Learning rate"), ("optim.epochs", "Epochs"),
              ("optim.max_steps", "Max steps"), ("sequence.max_len", "Max length"), ("optim.batch_size", "Batch size"),
              ("optim.grad_accum", "Grad accumulation"))


def preset_description(path: Path) -> str:
    """The leading comment block of a preset YAML (its own documentation)."""
    lines = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("# ").rstrip())
    return " ".join(l for l in lines if l)


class MethodPage(QWidget):
    """Preset, main knobs, Advanced panel, device and the planner's verdict."""

    title = "Method & fit"

    def __init__(self, state, settings, parent=None):
        super().__init__(parent)
        self.state, self.settings = state, settings
        self.query: EngineQuery | None = None
        lay = QVBoxLayout(self)
        lay.addWidget(PageHeader("3 · Method & fit", "Pick a preset, adjust the main settings, and check that the "
                                 "run fits your GPU (or CPU) before you start."))
        split = QSplitter(Qt.Orientation.Horizontal)
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)

        preset_box = QGroupBox("Preset")
        pl = QVBoxLayout(preset_box)
        self.preset = QComboBox()
        self.preset.addItem("(engine defaults)", "")
        for p in sorted(PRESETS_DIR.glob("*.yaml")):
            self.preset.addItem(p.stem, str(p))
            self.preset.setItemData(self.preset.count() - 1, preset_description(p), Qt.ItemDataRole.ToolTipRole)
        self.preset_text = QLabel("")
        self.preset_text.setWordWrap(True)
        self.preset_text.setStyleSheet("color: palette(placeholder-text);")
        self.preset_note = QLabel("")  # when the preset's stage options cannot go with the chosen stage
        self.preset_note.setWordWrap(True)
        self.preset_note.setStyleSheet("color: #9a6700;")
        self.preset_note.setVisible(False)
        pl.addWidget(self.preset)
        pl.addWidget(self.preset_text)
        pl.addWidget(self.preset_note)
        ll.addWidget(preset_box)

        knobs = QGroupBox("Main settings")
        form = QGridLayout(knobs)  # two label/editor columns: the fit panel below needs the height
        self.editors: dict[str, FieldEditor] = {}
        self.stage = StageChooser(state)
        form.addWidget(self.stage, 0, 0, 1, 4)
        if self.stage.editor is not None:
            self.editors["stage"] = self.stage.editor
        from app.reward_picker import RewardPicker

        self.reward_picker = RewardPicker(state)  # shown only for stage=grpo/rloo
        form.addWidget(self.reward_picker, form.rowCount(), 0, 1, 4)
        self.method_chooser = MethodChooser(state, settings, skip=tuple(k for k, _ in MAIN_KNOBS))
        form.addWidget(self.method_chooser, form.rowCount(), 0, 1, 4)
        self.editors["method"] = self.method_chooser.editor
        self.gpu_chooser = GpuChooser(state)
        self.editors.update({"dist.num_processes": self.gpu_chooser.processes, "dist.strategy": self.gpu_chooser.strategy})
        form.addWidget(self.gpu_chooser, form.rowCount() + len(MAIN_KNOBS), 0, 1, 4)
        for i, (key, label) in enumerate(MAIN_KNOBS):
            ed = FieldEditor(FIELDS[key]).bind(state)
            lab = QLabel(label + ":")
            lab.setToolTip(ed.toolTip())
            row, col = 3 + i // 2, (i % 2) * 2
            form.addWidget(lab, row, col)
            form.addWidget(ed, row, col + 1)
            self.editors[key] = ed
        form.setColumnStretch(1, 1)
        form.setColumnStretch(3, 1)
        form.setHorizontalSpacing(8)
        form.setVerticalSpacing(3)
        self.config_error = QLabel("")
        self.config_error.setWordWrap(True)
        self.config_error.setStyleSheet("color: #d1242f;")
        self.config_error.setVisible(False)
        form.addWidget(self.config_error, form.rowCount(), 0, 1, 4)
        knobs.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        preset_box.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)
        ll.addWidget(knobs)

        fit = QGroupBox("Will it fit?")
        fl = QVBoxLayout(fit)
        target_row = QHBoxLayout()
        target_row.addWidget(QLabel("Plan for:"))
        self.target = QComboBox()
        self.target.setMaxVisibleItems(20)
        self.target.addItem("this machine (detected)", None)
        self.target.insertSeparator(self.target.count())
        for name, gb in gpu_catalog():
            self.target.addItem(f"{name} ({gb:g} GB)", (name, gb))
        self.target.insertSeparator(self.target.count())
        for name in OTHER_TARGETS:
            self.target.addItem(name.replace("GB", " GB"), (name, None))
        self.target.setToolTip("The machine to plan for: this one (its GPU found with nvidia-smi, else its free "
                               "RAM), or any GPU in the planner's catalog, when you will train somewhere else.")
        saved_name = str(settings.value("plan/target", "") or "")
        saved = self.target.findText(saved_name) if saved_name else -1  # (separators have empty text)
        if saved > 0:
            self.target.setCurrentIndex(saved)
        target_row.addWidget(self.target, 1)
        fl.addLayout(target_row)
        self.device_label = QLabel("")
        self.device_label.setWordWrap(True)
        fl.addWidget(self.device_label)
        self.plan_view = PlanView()
        fl.addWidget(self.plan_view)
        ll.addWidget(fit, 1)
        split.addWidget(left)

        adv = QGroupBox("Advanced (every option of the run config; hover for help)")
        al = QVBoxLayout(adv)
        self.advanced = ConfigForm(state, exclude=tuple(k for k, _ in MAIN_KNOBS) + ("stage", "method") + PAGE_OWNED
                                   + GpuChooser.KEYS)
        al.addWidget(self.advanced)
        split.addWidget(adv)
        split.setSizes([520, 480])
        lay.addWidget(split, 1)

        self.debounce = QTimer(self)
        self.debounce.setSingleShot(True)
        self.debounce.setInterval(500)
        self.debounce.timeout.connect(self.replan)
        self.preset.currentIndexChanged.connect(self._preset_chosen)
        state.value_changed.connect(lambda key: key != "output_dir" and self.debounce.start())
        state.value_changed.connect(lambda key: key == "stage" and self._show_preset_note())
        state.preset_changed.connect(self._show_preset)
        self.target.currentIndexChanged.connect(self._target_chosen)
        self._show_preset(state.preset)
        self._planned = False  # plan when first shown, then on every change

    # preset ------------------------------------------------------------------------
    def select_preset(self, path: str) -> None:
        i = self.preset.findData(str(path))
        self.preset.setCurrentIndex(i if i >= 0 else 0)

    def _preset_chosen(self, index: int) -> None:
        path = self.preset.itemData(index) or ""
        try:
            self.state.set_preset(path)
        except EdgetuneError as e:
            self.config_error.setText(str(e))
            self.config_error.setVisible(True)

    def _show_preset(self, path: str) -> None:
        i = self.preset.findData(path)
        if i < 0:  # a reopened run's own config.yaml
            self.preset.addItem(f"{Path(path).parent.name} (this run's config)", path)
            i = self.preset.count() - 1
        if i != self.preset.currentIndex():
            self.preset.blockSignals(True)
            self.preset.setCurrentIndex(i)
            self.preset.blockSignals(False)
        if not path:
            text = "The engine's defaults: QLoRA, rank 16, lr 2e-4, 3 epochs."
        else:
            text = preset_description(Path(path)) or f"The settings saved with this run ({path})."
        self.preset_text.setText(text)
        self._show_preset_note()

    def _show_preset_note(self) -> None:
        other = sorted(s for s in self.state.preset_stages if s != self.state.stage())
        self.preset_note.setText(f"This preset sets {', '.join(other)} options, which stage {self.state.stage()} does "
                                 f"not take: the run gets every value as key=value instead of the preset file."
                                 if other else "")
        self.preset_note.setVisible(bool(other))

    # fit ------------------------------------------------------------------------------
    def showEvent(self, event) -> None:
        super().showEvent(event)
        if not self._planned:
            self.replan()

    def _target_chosen(self, index: int) -> None:
        self.settings.set_value("plan/target", self.target.itemText(index) if index > 0 else "")
        self.replan()

    def plan_args(self) -> list[str]:
        """`engine plan [PRESET] key=value ... --json [--gpu NAME | --vram GB]`."""
        args = ["plan", *self.state.config_args(), "--json"]
        choice = self.target.currentData()
        if choice:
            name, gb = choice
            args += ["--gpu", name] if gb is None or gpu_name_parses(name, gb) else ["--vram", f"{gb:g}"]
        return args

    def replan(self) -> None:
        """Validate the settings here, then ask `engine plan` for the memory breakdown."""
        self.debounce.stop()
        self._planned = True
        try:
            self.state.resolved_config()
        except EdgetuneError as e:
            self.config_error.setText(str(e))
            self.config_error.setVisible(True)
            self.plan_view.show_message("Fix the setting above to see the memory plan.", "#d1242f")
            return
        self.config_error.setText("")
        self.config_error.setVisible(False)
        if self.query is not None:
            self.query.cancel()
        self.query = EngineQuery(self.plan_args(), self)
        self.query.result.connect(self._plan_ready)
        self.query.failed.connect(self._plan_failed)
        self.plan_view.show_message("Planning…")
        self.query.start()

    def _plan_ready(self, plan) -> None:
        plan = plan if isinstance(plan, dict) else {}
        self.device_label.setText(device_text(plan, self.target.currentData()))
        self.plan_view.show_plan(plan)

    def _plan_failed(self, message: str) -> None:
        if "invalid choice: 'plan'" in message:
            message = "this engine has no `engine plan` command yet (update edgetune)."
        self.device_label.setText("")
        self.plan_view.show_message(f"The memory planner could not answer: {message}", "#9a6700")


def device_text(plan: dict, choice: tuple | None) -> str:
    """One line on where the plan is for: the detected GPU (or the CPU), or the chosen catalog machine."""
    device, name, gb = plan.get("device", ""), str(plan.get("target") or "?"), float(plan.get("memory_gb") or 0)
    if choice:
        if name.startswith("GPU with "):  # passed as --vram (its name does not parse back): keep the catalog's
            name = choice[0]
        where = {"cpu": "GB of RAM", "mps": "GB usable by the GPU"}.get(device, "GB of GPU memory")
        return f"Planning for <b>{name}</b>: {gb:g} {where} (not this machine)."
    if device == "cuda":
        return f"This machine: <b>{name}</b> with {gb:.1f} GB of GPU memory."
    if device == "mps":
        return f"This machine: <b>{name}</b>, {gb:.1f} GB usable by the GPU."
    return (f"This machine: <b>no GPU found</b>, so training runs on the CPU (slow, but it works) "
            f"with {gb:.1f} GB of free RAM.")
