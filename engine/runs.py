"""Run folders: what `engine train` leaves behind, and how other commands find things in it.

    runs/<name>/
      config.yaml          resolved config, exactly what ran
      events.jsonl         every event of the run
      adapter/             adapter_model.safetensors + adapter_config.json + tokenizer
      checkpoints/step-N/  resumable state (written to a temp dir, renamed when complete)
      merged/              after `engine merge` (16-bit safetensors + tokenizer + chat template)
      exports/             model-<quant>.gguf, Modelfile, onnx-<precision>/, verify.json

Exporters and chat accept either a run folder or any model spec; `model_dir_for`
turns both into a plain HF folder (merging the adapter first when needed).
"""

from __future__ import annotations

from pathlib import Path


def is_run_dir(path: str | Path) -> bool:
    """A folder `engine train` wrote: config.yaml and at least one of adapter/, final/, merged/, checkpoints/."""
    p = Path(path)
    return p.is_dir() and (p / "config.yaml").is_file() and any((p / d).is_dir() for d in ("adapter", "final", "merged", "checkpoints"))


def model_dir_for(spec: str | Path, purpose: str = "causal-lm", trust_remote_code: bool = False) -> Path:
    """An HF folder for a run folder (its merged/ model, merged on demand) or any model spec.

    The same as `engine.models.resolve_model(spec).path`: one resolver, one set of checks.
    """
    from engine.models import resolve_model

    return resolve_model(str(spec), purpose=purpose, trust_remote_code=trust_remote_code).path


def exports_dir_for(spec: str | Path) -> Path:
    """Where exports go: <run>/exports for a run folder, ./exports/<model name> otherwise."""
    p = Path(spec)
    if is_run_dir(p):
        return p / "exports"
    name = p.name.replace(".gguf", "") if p.exists() else str(spec).split("/")[-1]
    return Path("exports") / name
