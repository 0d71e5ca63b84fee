"""Find a model's shape without torch and without the network.

Tried in order, like `engine.models.sources`:
  1. a local folder with config.json, or a run folder (its merged/ or final/ model, else its base
     model's shape: merging changes no shape); checked with engine.models.checks, the same
     policy every command applies (pickle weights, no tokenizer, remote code, a reward model)
  2. a .gguf file: its metadata header, read with the `gguf` package (numpy only)
  3. the bundled model: the config.json of its de-quantised cache folder, else the catalog
  4. a hub id already in the Hugging Face cache: the snapshot's config.json
  5. the built-in catalog (model_catalog.py) by name
An unknown model fails naming the catalog entries closest to what was typed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

from engine.errors import ModelSourceError
from engine.plan.model_catalog import CATALOG, lookup, normalise, suggestions
from engine.plan.shape import ModelShape, shape_from_config


def _read_config(path: Path, name: str, source: str) -> ModelShape:
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ModelSourceError(f"Cannot read {path} ({e}); is it a Hugging Face config.json?") from None
    from engine.plan.vision_shape import processor_settings

    processor = processor_settings(path.parent) if "vision_config" in config else None  # a VLM's image splitting
    return shape_from_config(config, name=name, source=source, processor=processor)


def _run_base(run: Path) -> str:
    """model.name_or_path of a run's config.yaml (read as plain YAML: no config machinery)."""
    import yaml

    data = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8")) or {}
    base = (data.get("model") or {}).get("name_or_path") if isinstance(data, dict) else None
    if not base:
        raise ModelSourceError(f"{run / 'config.yaml'} names no model.name_or_path, so its shape is unknown.")
    return str(base)


def _from_folder(spec: str, trust_remote_code: bool = False) -> Optional[ModelShape]:
    from engine.models.checks import check_model_folder, check_run_stage
    from engine.models.sources import finished_model_folder
    from engine.runs import is_run_dir

    path = Path(spec).expanduser()
    if is_run_dir(path):
        check_run_stage(path, "shape")
        folder = finished_model_folder(path)
        if folder is None:  # adapter not merged yet: the merged model will have its base's shape
            return find_shape(_run_base(path), trust_remote_code)
        path = folder
    if (path / "config.json").is_file():
        check_model_folder(path, "shape", trust_remote_code)  # config.json alone is enough to plan
        return _read_config(path / "config.json", path.name, f"config.json in {path}")
    return None


# GGUF metadata key (after '<arch>.') -> config.json key
GGUF_KEYS = {"embedding_length": "hidden_size", "feed_forward_length": "intermediate_size",
             "block_count": "num_hidden_layers", "attention.head_count": "num_attention_heads",
             "attention.head_count_kv": "num_key_value_heads", "attention.key_length": "head_dim"}


def _from_gguf(spec: str) -> Optional[ModelShape]:
    path = Path(spec).expanduser()
    if not (spec.lower().endswith(".gguf") and path.is_file()):
        return None
    from gguf import GGUFReader  # numpy only; no torch

    reader = GGUFReader(str(path))

    def value(key: str):
        f = reader.fields.get(key)
        if f is None or not f.data:
            return None
        part = f.parts[f.data[0]]
        return bytes(part).decode() if f.types and f.types[0].name == "STRING" else part[0].item()

    arch = value("general.architecture") or "llama"
    config = {"model_type": {"qwen2": "qwen2", "qwen3": "qwen3", "gemma2": "gemma2", "gemma3": "gemma3_text",
                             "phi3": "phi3"}.get(arch, "llama")}
    for gkey, ckey in GGUF_KEYS.items():
        v = value(f"{arch}.{gkey}")
        if v is not None:
            config[ckey] = int(v)
    tokens = reader.fields.get("tokenizer.ggml.tokens")
    config["vocab_size"] = len(tokens.data) if tokens is not None else value(f"{arch}.vocab_size")
    config["tie_word_embeddings"] = not any(t.name == "output.weight" for t in reader.tensors)
    return shape_from_config(config, name=path.stem, source=f"GGUF header of {path.name}")


def _from_bundled(spec: str) -> Optional[ModelShape]:
    from engine.models.bundled import BUNDLED
    from engine.paths import cache_dir

    name = spec.strip().lower()
    if name not in BUNDLED:
        return None
    for folder in sorted((cache_dir() / "models").glob(f"{name}-*")):
        if (folder / "config.json").is_file() and (folder / "edgetune-import.json").is_file():
            return _read_config(folder / "config.json", name, "bundled model's cached config.json")
    shape = lookup(name)
    if shape is None:  # a bundled model must always have a catalog entry; a test checks it
        raise ModelSourceError(f"Bundled model '{name}' has no catalog shape.")
    return shape


def _hub_cache_dirs() -> list[Path]:
    if os.environ.get("HF_HUB_CACHE"):
        return [Path(os.environ["HF_HUB_CACHE"])]
    home = Path(os.environ.get("HF_HOME") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "huggingface")
    return [home / "hub"]


def _from_hub_cache(spec: str) -> Optional[ModelShape]:
    if spec.count("/") != 1 or spec.startswith((".", "/", "~")):
        return None
    for hub in _hub_cache_dirs():
        repo = hub / ("models--" + spec.replace("/", "--"))
        configs = sorted(repo.glob("snapshots/*/config.json"), key=lambda p: p.stat().st_mtime, reverse=True)
        if configs:
            return _read_config(configs[0], spec, "Hugging Face cache")
    return None


def _from_catalog(spec: str) -> Optional[ModelShape]:
    return lookup(spec)


FINDERS = (_from_folder, _from_gguf, _from_bundled, _from_hub_cache, _from_catalog)


def find_shape(spec: str, trust_remote_code: bool = False) -> ModelShape:
    """The shape of `model.name_or_path`, read without torch or network.

    A local folder or run is checked like `engine.models.resolve_model` checks it (same messages).
    """
    spec = str(spec).strip()
    for finder in FINDERS:
        shape = finder(spec, trust_remote_code) if finder is _from_folder else finder(spec)
        if shape is not None:
            return shape
    close = suggestions(spec)
    hint = f" Closest catalog entries: {', '.join(close)}." if close else ""
    raise ModelSourceError(
        f"The memory planner does not know the shape of '{spec}' (normalised '{normalise(spec)}'): it is not a local "
        f"folder with config.json, not in the Hugging Face cache and not in the catalog.{hint} Download its "
        f"config.json into a folder and pass that folder, or plan a catalog model: {', '.join(sorted(CATALOG))}."
    )
