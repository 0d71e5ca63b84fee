"""general.* metadata: name, base model, fine-tune, size label, license, who quantised it.

The `gguf` package reads what a model card (README.md front matter) and config.json
say; we add what only edgetune knows: the run name as the fine-tune, the base model
the run started from, and "edgetune" as the tool that made the file.
"""

from __future__ import annotations

from pathlib import Path


def write_general(w, model_dir: Path, config: dict, n_params: int, extra: dict) -> None:
    """Write general.* keys. `extra` may hold name, finetune, base_model (spec string), description."""
    import gguf

    name = extra.get("name") or _model_name(model_dir, config)
    # Only a model card (README.md) is worth the gguf package's heuristics; a bare folder name
    # such as a cache hash would otherwise turn into a bogus "fine-tune" label.
    card_dir = Path(model_dir) if (Path(model_dir) / "README.md").is_file() else None
    meta = gguf.Metadata.load(None, card_dir, name, n_params)
    meta.name = name
    if extra.get("finetune"):
        meta.finetune = extra["finetune"]
    if extra.get("base_model"):
        base = str(extra["base_model"])
        meta.base_models = [{"name": base.split("/")[-1], "repo_url": f"https://huggingface.co/{base}"}
                            if base.count("/") == 1 and not Path(base).exists() else {"name": base}]
    if extra.get("description"):
        meta.description = extra["description"]
    if meta.size_label is None and n_params > 0:
        meta.size_label = gguf.size_label(n_params, 0, 0, 0)
    meta.quantized_by = "edgetune"
    meta.set_gguf_meta_model(w)


def _model_name(model_dir: Path, config: dict) -> str:
    raw = config.get("_name_or_path") or config.get("_model_name_or_path") or ""
    # A run's merged/ folder is named 'merged'; the run folder's name says more.
    folder = Path(model_dir)
    if folder.name in ("merged", "final") and folder.parent.name:
        return folder.parent.name
    return Path(raw).name if raw and not raw.startswith("/") else folder.name
