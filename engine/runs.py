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

from engine.errors import EdgetuneError


def is_run_dir(path: str | Path) -> bool:
    p = Path(path)
    return p.is_dir() and (p / "config.yaml").is_file() and any((p / d).is_dir() for d in ("adapter", "final", "merged", "checkpoints"))


def model_dir_for(spec: str | Path) -> Path:
    """An HF folder for a run folder (its merged/ model, merged on demand) or any model spec."""
    p = Path(spec)
    if is_run_dir(p):
        merged = p / "merged"
        if (merged / "config.json").is_file() and not _adapter_newer(p):
            return merged
        if (p / "adapter" / "adapter_config.json").is_file():
            from engine.train.merge import merge_run

            return merge_run(p)
        if (p / "final" / "config.json").is_file():  # full / freeze fine-tunes save whole weights
            return p / "final"
        raise EdgetuneError(f"Run folder '{p}' has no adapter/ or merged/ yet: the run did not finish. Resume it with `engine train --resume {p}`.")
    from engine.models import resolve_model

    return resolve_model(str(spec)).path


def _adapter_newer(run: Path) -> bool:
    """The adapter changed after merged/ was written (the run was resumed or retrained): merge again."""
    adapter = run / "adapter" / "adapter_model.safetensors"
    merged = sorted((run / "merged").glob("*.safetensors"))
    return adapter.is_file() and bool(merged) and adapter.stat().st_mtime > min(f.stat().st_mtime for f in merged)


def exports_dir_for(spec: str | Path) -> Path:
    """Where exports go: <run>/exports for a run folder, ./exports/<model name> otherwise."""
    p = Path(spec)
    if is_run_dir(p):
        return p / "exports"
    name = p.name.replace(".gguf", "") if p.exists() else str(spec).split("/")[-1]
    return Path("exports") / name
