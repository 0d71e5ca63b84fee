"""Build a validated `RunConfig` from defaults < YAML < command-line overrides.

    cfg = load_config("assets/presets/cpu_quickstart.yaml", ["lr=1e-3", "lora.r=8"])

Keys may be dotted (`optim.lr`), short aliases (`lr`) or, in YAML, nested
sections. Every value is checked against the field's type and choices; an
unknown key, a wrong type or an impossible combination raises `ConfigError`
naming the key and what it accepts.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from pathlib import Path
from typing import Any, Iterator

import yaml

from engine.errors import ConfigError
from engine.config.schema import ALIASES, RunConfig
from engine.config.rules import check_combinations


@dataclasses.dataclass(frozen=True)
class FieldInfo:
    """One leaf option: its dotted key, type, default, help and allowed values."""

    key: str
    type: Any
    default: Any
    help: str
    choices: tuple = ()


def _is_section(tp: Any) -> bool:
    return dataclasses.is_dataclass(tp)


def iter_fields(cls: type = RunConfig, prefix: str = "") -> Iterator[FieldInfo]:
    """Yield every leaf option of the config, depth first, in declaration order."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        key = f"{prefix}{f.name}"
        if _is_section(tp):
            yield from iter_fields(tp, key + ".")
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        yield FieldInfo(key, tp, default, f.metadata.get("help", ""), tuple(f.metadata.get("choices", ())))


FIELDS: dict[str, FieldInfo] = {fi.key: fi for fi in iter_fields()}


def describe_type(tp: Any) -> str:
    """A field's type as people read it: 'int or 'auto'', 'str or null', ..."""
    origin = typing.get_origin(tp)
    if origin is typing.Union:
        return " or ".join(describe_type(a) for a in typing.get_args(tp))
    if origin is typing.Literal:
        return " or ".join(repr(a) for a in typing.get_args(tp))
    if tp is type(None):
        return "null"
    return getattr(tp, "__name__", str(tp))


def _yaml_value(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        raise ValueError(f"not valid YAML: {text!r}") from None


def _coerce(value: Any, tp: Any) -> Any:
    """Return `value` as type `tp` or raise ValueError. Strings from the CLI are parsed."""
    origin = typing.get_origin(tp)
    if origin is typing.Union:
        for arg in typing.get_args(tp):
            try:
                return _coerce(value, arg)
            except (ValueError, TypeError):
                continue
        raise ValueError
    if origin is typing.Literal:
        if value in typing.get_args(tp):
            return value
        raise ValueError
    if tp is type(None):
        if value is None or (isinstance(value, str) and value.lower() in ("", "null", "none")):
            return None
        raise ValueError
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
            return value.lower() in ("true", "yes", "on", "1")
        raise ValueError
    if tp is int:
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            return int(value)
        raise ValueError
    if tp is float:
        if isinstance(value, bool):
            raise ValueError
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            return float(value)
        raise ValueError
    if tp is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
        raise ValueError
    if tp is list or origin is list:
        if isinstance(value, str):
            value = _yaml_value(value) if value.strip().startswith("[") else [v for v in value.split(",") if v]
        if isinstance(value, (list, tuple)):
            return [dict(v) if isinstance(v, dict) else str(v) for v in value]  # mappings: e.g. rl.rewards entries
        raise ValueError
    if tp is dict or origin is dict:
        if isinstance(value, str):
            value = _yaml_value(value) or {}
        if isinstance(value, dict):
            return {str(k): v for k, v in value.items()}
        raise ValueError
    raise TypeError(f"unsupported config type {tp!r}")


def _resolve_key(key: str, where: str) -> str:
    key = ALIASES.get(key, key)
    if key not in FIELDS:
        known = sorted(FIELDS) + sorted(ALIASES)
        close = difflib.get_close_matches(key, known, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(
            f"Unknown config key '{key}' ({where}).{hint} Run `engine config --fields` for every key."
        )
    return key


def set_value(flat: dict[str, Any], key: str, value: Any, where: str) -> None:
    """Validate one value and store it in `flat` under its full dotted key."""
    key = _resolve_key(key, where)
    info = FIELDS[key]
    try:
        coerced = _coerce(value, info.type)
    except (ValueError, TypeError):
        raise ConfigError(
            f"Config key '{key}' ({where}) got {value!r}; expected {describe_type(info.type)}. {info.help}"
        ) from None
    if info.choices and coerced not in info.choices:
        raise ConfigError(
            f"Config key '{key}' ({where}) got {coerced!r}; allowed values: {', '.join(info.choices)}."
        )
    flat[key] = coerced


def _flatten_yaml(data: Any, where: str, prefix: str = "") -> Iterator[tuple[str, Any]]:
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of config keys, got {type(data).__name__}.")
    for k, v in data.items():
        key = f"{prefix}{k}"
        section = any(f.startswith(key + ".") for f in FIELDS) and key not in FIELDS
        if section and isinstance(v, dict):
            yield from _flatten_yaml(v, where, key + ".")
        elif section and key not in ALIASES:  # `model: x` and `data: x` are short names, not sections
            names = [f[len(key) + 1:] for f in FIELDS if f.startswith(key + ".")]
            raise ConfigError(
                f"'{key}' ({where}) is a section, not a value; give it keys, e.g. {key}: {{{names[0]}: ...}} "
                f"(its keys: {', '.join(names)})."
            )
        else:
            yield key, v


def parse_override(text: str) -> tuple[str, Any]:
    """Split `key=value`; the value is parsed as YAML so lists and null work."""
    if "=" not in text:
        raise ConfigError(f"Override '{text}' is not key=value (e.g. lr=1e-3 or lora.r=8).")
    key, raw = text.split("=", 1)
    raw = raw.strip()
    try:
        value = yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError:
        value = raw
    # YAML 1.1 reads '1e-3' as a string; _coerce handles that per field type.
    return key.strip(), value


def load_config(path: str | Path | None = None, overrides: list[str] | tuple = (), base: dict | None = None) -> RunConfig:
    """Defaults < YAML file < `base` dict < `key=value` overrides, validated."""
    flat: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"Config file '{path}' not found. Pass a YAML file, e.g. assets/presets/cpu_quickstart.yaml.")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"Config file '{path}' is not valid YAML: {e}") from None
        seen: dict[str, str] = {}
        for key, value in _flatten_yaml(data, str(path)):
            full = ALIASES.get(key, key)
            if full in seen and seen[full] != key:
                raise ConfigError(f"{path} sets {full} twice, as '{seen[full]}' and as '{key}'; keep one of them.")
            seen[full] = key
            set_value(flat, key, value, str(path))
    for key, value in _flatten_yaml(base or {}, "settings"):
        set_value(flat, key, value, "settings")
    for text in overrides:
        key, value = parse_override(text)
        set_value(flat, key, value, "command line")
    cfg = from_flat(flat)
    _check_stage_sections(flat, cfg)
    check_combinations(cfg)
    return cfg


def _check_stage_sections(flat: dict[str, Any], cfg: RunConfig) -> None:
    """A stage's own section (dpo.*, kto.*, ...) may only be set when that stage is chosen."""
    from engine.config.stages import section_stages

    for key in flat:
        owners = section_stages(key.split(".")[0])
        if owners and cfg.stage not in owners:
            owner = " or stage=".join(owners)
            raise ConfigError(f"{key} is an option of stage={owner}, but stage={cfg.stage}. Set stage={owner}, "
                              f"or remove {key}.")


def from_flat(flat: dict[str, Any]) -> RunConfig:
    """Build a RunConfig from validated dotted keys (defaults for the rest)."""
    cfg = RunConfig()
    for key, value in flat.items():
        *sections, name = key.split(".")
        target = cfg
        for s in sections:
            target = getattr(target, s)
        setattr(target, name, value)
    return cfg


def to_dict(cfg: RunConfig) -> dict:
    """The config as nested plain data (what config.yaml holds): other stages' sections are left out."""
    from engine.config.stages import SECTION_STAGE, section_stages

    data = dataclasses.asdict(cfg)
    for section in SECTION_STAGE:
        if cfg.stage not in section_stages(section):
            data.pop(section, None)
    return data


def save_config(cfg: RunConfig, path: str | Path) -> None:
    """Write the resolved config as YAML, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False), encoding="utf-8")
    tmp.replace(path)


def get_value(cfg: RunConfig, key: str) -> Any:
    """Read one dotted key (aliases allowed)."""
    target: Any = cfg
    for part in ALIASES.get(key, key).split("."):
        target = getattr(target, part)
    return target
