"""What the wizard has chosen so far: the run config as text per field, plus the pages' findings.

Every run option lives in the engine's one `RunConfig` (engine/config/schema.py).
The state keeps, for every leaf key of it, the text a form field shows
(`values`), and the preset's resolved values (`base`). The run is started as

    engine train PRESET key=value ...   (one key=value per field that differs from the preset)

so the exact command can be shown, copied and repeated in a terminal, and the
engine's own loader parses and validates every value (no second parser here).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import yaml
from PySide6.QtCore import QObject, Signal

from app.stage_info import stage_of_key
from engine.config import FIELDS, get_value, load_config
from engine.paths import ASSETS_DIR

# Keys the Model and Data pages own: choosing a preset later keeps the user's choice.
PAGE_OWNED = ("model.name_or_path", "data.path", "data.format", "data.columns", "data.on_error",
              "data.system_prompt", "output_dir")


def format_value(value: Any) -> str:
    """A config value as the text a form field shows and `key=text` passes to the engine."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return format(value, ".10g")
    if isinstance(value, (list, dict)):
        return yaml.safe_dump(value, default_flow_style=True, width=10**6).strip()
    return str(value)


def override_text(key: str, text: str) -> str:
    """`key=text`, quoting a plain-string value YAML would read as something else (yes, 1e-3, null)."""
    if FIELDS[key].type is str and text:
        try:
            parsed = yaml.safe_load(text)
        except yaml.YAMLError:
            parsed = None
        if parsed != text:
            text = json.dumps(text)
    return f"{key}={text}"


def config_texts(cfg) -> dict[str, str]:
    """Every leaf key of a RunConfig -> its display text."""
    return {key: format_value(get_value(cfg, key)) for key in FIELDS}


class WizardState(QObject):
    """Shared between the pages; pages listen to `value_changed` for the keys they show."""

    value_changed = Signal(str)      # dotted config key
    preset_changed = Signal(str)     # preset path ('' = engine defaults)
    model_info_changed = Signal(object)
    data_report_changed = Signal(object)
    run_dir_changed = Signal(str)

    def __init__(self, parent: Optional[QObject] = None):
        super().__init__(parent)
        self.preset: str = ""
        self.base: dict[str, str] = config_texts(load_config(None))
        self.values: dict[str, str] = dict(self.base)
        self.model_info = None
        self.data_report = None
        self.run_dir: str = ""

    # values ----------------------------------------------------------------
    def get(self, key: str) -> str:
        return self.values[key]

    def set(self, key: str, text: str) -> None:
        if key not in FIELDS:
            raise KeyError(f"unknown config key {key!r}")
        if self.values.get(key) != text:
            self.values[key] = text
            self.value_changed.emit(key)

    def set_preset(self, path: str) -> None:
        """Load a preset YAML (or '' for the engine's defaults); keeps the Model/Data pages' choices."""
        cfg = load_config(path or None)
        kept = {k: self.values[k] for k in PAGE_OWNED if self.values[k] != self.base[k]}
        self.preset = str(path or "")
        self.base = config_texts(cfg)
        old = self.values
        self.values = {**self.base, **kept}
        data = self.values["data.path"]
        if "data.path" not in kept and data and not Path(data).is_absolute() and (ASSETS_DIR.parent / data).exists():
            # presets name the sample data relative to the project; the engine runs from any folder
            self.values["data.path"] = str((ASSETS_DIR.parent / data).resolve())
        for key in FIELDS:
            if old.get(key) != self.values[key]:
                self.value_changed.emit(key)
        self.preset_changed.emit(self.preset)

    def stage(self) -> str:
        """The training stage chosen ('sft' with an engine that has no stages)."""
        return self.values.get("stage") or "sft"

    def overrides(self) -> list[str]:
        """`key=value` for every field that differs from the preset, in config order.

        A stage's own section (dpo.*, kto.*, ...) is left out unless that stage is chosen: the engine
        rejects a section key set for another stage, and an edit made before switching stage must not
        block the run.
        """
        stage = self.stage()
        return [override_text(k, self.values[k]) for k in FIELDS
                if self.values[k] != self.base[k] and stage_of_key(k) in (None, stage)]

    def resolved_config(self):
        """The RunConfig the engine will run (raises ConfigError naming the bad key)."""
        return load_config(self.preset or None, self.overrides())

    def config_args(self) -> list[str]:
        """Arguments after the subcommand: [PRESET] key=value ..."""
        return ([self.preset] if self.preset else []) + self.overrides()

    # findings of the pages ---------------------------------------------------
    def set_model_info(self, info) -> None:
        self.model_info = info
        self.model_info_changed.emit(info)

    def set_data_report(self, report) -> None:
        self.data_report = report
        self.data_report_changed.emit(report)

    def set_run_dir(self, path: str | Path) -> None:
        self.run_dir = str(path)
        self.run_dir_changed.emit(self.run_dir)
