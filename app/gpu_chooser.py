"""The Method page's "GPUs to use": detected GPUs, dist.num_processes and dist.strategy.

Both editors are bound to the run config (`dist.num_processes`, `dist.strategy`), so the
choice travels to `engine train` and `engine plan` as key=value like every other knob; the
line under them says what the choice means (how the effective batch is split, which strategy
shards what). GPUs are detected with `nvidia-smi -L` (the app never imports torch).
"""

from __future__ import annotations

import shutil
import subprocess

from PySide6.QtWidgets import QGridLayout, QLabel, QWidget

from app.field_editor import FieldEditor
from engine.config import FIELDS
from engine.config.dist import STRATEGIES


def detected_gpus() -> list[str]:
    """Names of the NVIDIA GPUs this machine shows (empty without a driver)."""
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.split(":", 1)[1].split("(")[0].strip() for line in out.splitlines() if line.startswith("GPU ")]


def describe_choice(processes: str, strategy: str, gpus: int) -> str:
    """One line: what `dist.num_processes` and `dist.strategy` will do on this machine."""
    n = gpus if processes == "auto" else int(processes) if processes.isdigit() else 1
    n = max(1, n)
    if n == 1:
        where = f"{gpus} GPU(s) found" if gpus else "no GPU found"
        return f"One process ({where}): a plain run. More GPUs: set GPUs to use to 2 or more, or auto."
    if not gpus:
        return (f"{n} processes on the CPU (DDP over gloo; they share this machine's cores, so it is for testing). "
                f"Effective batch = batch size x grad accumulation x {n}.")
    if n > gpus:
        return f"{n} processes but only {gpus} GPU(s) found: each process needs its own GPU."
    return f"{n} processes, one per GPU: {STRATEGIES[strategy]} Effective batch = batch size x grad accumulation x {n}."


class GpuChooser(QWidget):
    """Detected GPUs, the number to use and the strategy, bound to a WizardState."""

    KEYS = ("dist.num_processes", "dist.strategy")

    def __init__(self, state, gpus: list[str] | None = None, parent=None):
        super().__init__(parent)
        self.state = state
        self.gpus = detected_gpus() if gpus is None else gpus
        lay = QGridLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.setVerticalSpacing(2)
        found = ", ".join(self.gpus) if self.gpus else "none (training runs on the CPU)"
        self.detected = QLabel(f"GPUs found: {found}")
        self.detected.setWordWrap(True)
        lay.addWidget(self.detected, 0, 0, 1, 4)
        self.processes = FieldEditor(FIELDS["dist.num_processes"]).bind(state)
        self.strategy = FieldEditor(FIELDS["dist.strategy"]).bind(state)
        for col, (label, editor) in enumerate((("GPUs to use:", self.processes), ("Strategy:", self.strategy))):
            lab = QLabel(label)
            lab.setToolTip(editor.toolTip())
            lay.addWidget(lab, 1, col * 2)
            lay.addWidget(editor, 1, col * 2 + 1)
        lay.setColumnStretch(1, 1)
        lay.setColumnStretch(3, 1)
        self.explanation = QLabel("")
        self.explanation.setWordWrap(True)
        self.explanation.setStyleSheet("color: palette(placeholder-text);")
        lay.addWidget(self.explanation, 2, 0, 1, 4)
        state.value_changed.connect(lambda key: key in self.KEYS and self.refresh())
        self.refresh()

    def refresh(self) -> None:
        self.explanation.setText(describe_choice(self.state.get("dist.num_processes"), self.state.get("dist.strategy"),
                                                 len(self.gpus)))
