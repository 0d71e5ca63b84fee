"""The Data page's call into the engine's data API, run in a worker thread.

`engine.data.inspect.inspect_data` is what `engine data inspect` prints; the page
calls it directly because it needs more than the JSON summary: every record's
token length (for the histogram), the skipped records with their file:line, and
the sample split into trained / masked segments. Like the CLI, it adds the
training stages that can use the file (`stages`, from the engine's recipe registry).
"""

from __future__ import annotations

import threading

import yaml

from engine.errors import DataError

_tokenizers: dict = {}
_lock = threading.Lock()


def tokenizer_for(model: str):
    """The engine's tokenizer for `model` (chat template guaranteed), loaded once per model."""
    from engine.models.loading import load_tokenizer

    with _lock:
        if model not in _tokenizers:
            _tokenizers[model] = load_tokenizer(model)
        return _tokenizers[model]


def inspect_file(path: str, model: str, max_len: int, format: str = "auto", columns: str = "",
                 system_prompt: str = "", on_error: str = "abort", sample: int = 0):
    """Run the engine's inspect_data on `path` with the page's settings; returns an InspectReport
    (a VisionInspectReport for image + text records)."""
    from engine.data.inspect import inspect_data

    if has_images(path):
        return inspect_images(path, model, max_len, system_prompt, on_error, sample)

    try:
        cols = yaml.safe_load(columns) if columns.strip() else {}
    except yaml.YAMLError as e:
        raise DataError(f"data.columns is not valid YAML ({e}); write it like {{instruction: question, output: answer}}.") from None
    if not isinstance(cols, dict):
        raise DataError("data.columns must be a mapping like {instruction: question, output: answer}.")
    tok = tokenizer_for(model)
    with _lock:  # a tokenizer is not guaranteed thread-safe; two inspections may overlap
        report = inspect_data(path, tok, max_len, format, cols, system_prompt or None, on_error, sample)
    if not getattr(report, "stages", None):
        report.stages = engine_stages_for_kind(report.kind)
    return report


def engine_stages_for_kind(kind: str) -> list:
    """The stages whose recipe trains on `kind` (`engine data inspect` asks the same registry); [] on an engine
    without recipes, where the app falls back to its own table (app/stage_info.py)."""
    try:
        from engine.train.recipes import stages_for_kind
    except ImportError:
        return []
    return list(stages_for_kind(kind))


def has_images(path: str) -> bool:
    """Whether the file's first record carries images (engine/vision/data.py)."""
    from pathlib import Path

    from engine.data.readers import read_records
    from engine.vision.data import is_vision_record

    if not Path(path).is_file():
        return False
    for _, rec in read_records(path):
        return is_vision_record(rec)
    return False


def inspect_images(path: str, model: str, max_len: int, system_prompt: str = "", on_error: str = "abort", sample: int = 0):
    """engine.vision.inspect for image + text records; image tokens are counted when `model` is a VLM."""
    from engine.models import resolve_model
    from engine.vision import is_vlm_folder
    from engine.vision.inspect import inspect_vision

    folder = resolve_model(model, purpose="tokenizer").path
    return inspect_vision(path, folder if is_vlm_folder(folder) else None, max_len, system_prompt or None, on_error, sample)
