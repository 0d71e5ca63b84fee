"""What the wizard has chosen so far: the run config as text per field, plus the pages' findings.

Every run option lives in the engine's one `RunConfig` (engine/config/schema.py).
The state keeps, for every leaf key of it, the text a form field shows
(`values`), and the preset's resolved values (`base`). The run is started as

    engine train PRESET key=value ...   (one key=value per field that differs from the preset)

so the exact command can be shown, copied and repeated in a terminal, and the
engine's own loader parses and validates every value (no second parser here).
A training stage's own options (dpo.*, kto.*, ...) go only with that stage: the
engine refuses them under another stage. When the preset itself sets another
stage's options (a DPO preset, a reopened DPO run, then stage orpo chosen), the
run is started without the preset file, every value given as key=value.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import yaml
from PySide6.QtCore import QObject, Signal

from app.stage_info import key_applies, section_stage
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


def stages_set_in(path: str) -> set[str]:
    """The stages whose own sections a config YAML sets (`dpo: {beta: ...}` or `dpo.beta: ...` -> {'dpo'})."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) if path else {}
    except (OSError, yaml.YAMLError):
        return set()
    if not isinstance(data, dict):
        return set()
    return {s for s in (section_stage(str(k).split(".", 1)[0]) for k in data) if s}


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
        self.defaults: dict[str, str] = config_texts(load_config(None))
        self.base: dict[str, str] = dict(self.defaults)
        self.preset_stages: set[str] = set()  # stages whose options the preset file sets
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
        self.preset_stages = stages_set_in(self.preset)
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

    def without_preset(self) -> bool:
        """Whether the preset sets options of a stage other than the chosen one (then it cannot be passed on)."""
        return any(s != self.stage() for s in self.preset_stages)

    def overrides(self) -> list[str]:
        """`key=value` for every field that differs from the preset (or from the defaults, without it), in config order.

        A stage's own section (dpo.*, kto.*, ...) is left out unless that stage is chosen: the engine
        rejects a section key set for another stage, and an edit made before switching stage must not
        block the run.
        """
        stage, base = self.stage(), self.defaults if self.without_preset() else self.base
        return [override_text(k, self.values[k]) for k in FIELDS
                if self.values[k] != base[k] and key_applies(k, stage)]

    def preset_args(self) -> list[str]:
        """[PRESET] as passed to the engine: none when there is none, or when it sets another stage's options."""
        return [self.preset] if self.preset and not self.without_preset() else []

    def resolved_config(self):
        """The RunConfig the engine will run (raises ConfigError naming the bad key)."""
        return load_config((self.preset_args() or [None])[0], self.overrides())

    def config_args(self) -> list[str]:
        """Arguments after the subcommand: [PRESET] key=value ..."""
        return self.preset_args() + self.overrides()

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
