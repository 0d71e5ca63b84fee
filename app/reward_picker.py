"""The Method page's reward picker for the online-RL stages (stage=grpo, stage=rloo): what `rl.rewards` holds.

Three ways to add a reward, as the engine takes them (engine/rewards/spec.py): a built-in by name,
a Python function in a file the user picks ('file.py:func'), or a reward-model run folder
('rm:runs/<rm-run>', a stage=rm run). The list is written to `rl.rewards` as the engine's YAML
list; a weight is written in front ('0.5*length') and can be typed in the Advanced panel. The box
shows only while an RL stage is chosen.
"""

from __future__ import annotations

import yaml
from PySide6.QtWidgets import (QComboBox, QFileDialog, QGroupBox, QHBoxLayout, QInputDialog, QListWidget,
                               QPushButton, QVBoxLayout)

RL_STAGES = ("grpo", "rloo")
KEY = "rl.rewards"


def builtin_rewards() -> dict[str, str]:
    """Built-in reward name -> one line (the engine's registry; no torch)."""
    from engine.rewards.builtin import BUILTINS

    return {name: b.summary for name, b in BUILTINS.items()}


class RewardPicker(QGroupBox):
    """add_entry(text) / remove_selected() / entries(); bound to `rl.rewards` in the wizard state."""

    def __init__(self, state, parent=None):
        super().__init__("Rewards (online RL)", parent)
        self.state = state
        lay = QVBoxLayout(self)
        self.list = QListWidget()
        self.list.setMaximumHeight(90)
        self.list.setToolTip("Rewards the sampled answers are scored with; their weighted sum is what RL maximises")
        lay.addWidget(self.list)
        row = QHBoxLayout()
        self.builtin = QComboBox()
        for name, summary in builtin_rewards().items():
            self.builtin.addItem(name, name)
            self.builtin.setItemData(self.builtin.count() - 1, summary, 3)  # Qt.ToolTipRole
        add_builtin = QPushButton("Add")
        add_builtin.clicked.connect(lambda: self.add_entry(self.builtin.currentData()))
        add_file = QPushButton("Python function…")
        add_file.setToolTip("A function f(prompts, completions, **columns) -> list of floats in a .py file")
        add_file.clicked.connect(self._pick_function)
        add_rm = QPushButton("Reward model run…")
        add_rm.setToolTip("A run folder trained with stage=rm")
        add_rm.clicked.connect(self._pick_rm_run)
        remove = QPushButton("Remove")
        remove.clicked.connect(self.remove_selected)
        for w in (self.builtin, add_builtin, add_file, add_rm, remove):
            row.addWidget(w)
        lay.addLayout(row)
        state.value_changed.connect(self._changed)
        self._load()
        self._show_for_stage()

    def entries(self) -> list:
        """The entries as the config holds them (strings, or mappings with options)."""
        try:
            value = yaml.safe_load(self.state.get(KEY) or "[]")
        except yaml.YAMLError:
            return []
        return value if isinstance(value, list) else []

    def add_entry(self, entry) -> None:
        """Append a reward ('length', 'file.py:func', 'rm:runs/rm' or a mapping) unless it is already there."""
        if not entry or entry in self.entries():
            return
        self._write(self.entries() + [entry])

    def remove_selected(self) -> None:
        row = self.list.currentRow()
        items = self.entries()
        if 0 <= row < len(items):
            del items[row]
            self._write(items)

    def _write(self, items: list) -> None:
        self.state.set(KEY, yaml.safe_dump(items, default_flow_style=True, width=10**6).strip())

    def _pick_function(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Reward function file", "", "Python (*.py)")
        if not path:
            return
        name, ok = QInputDialog.getText(self, "Reward function", f"Function in {path}:")
        if ok and name.strip():
            self.add_entry(f"{path}:{name.strip()}")

    def _pick_rm_run(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Reward-model run (stage=rm)")
        if path:
            self.add_entry(f"rm:{path}")

    def _load(self) -> None:
        self.list.clear()
        for e in self.entries():
            self.list.addItem(e if isinstance(e, str) else ", ".join(f"{k}: {v}" for k, v in e.items()))

    def _changed(self, key: str) -> None:
        if key == KEY:
            self._load()
        elif key == "stage":
            self._show_for_stage()

    def _show_for_stage(self) -> None:
        self.setVisible(self.state.get("stage") in RL_STAGES)
