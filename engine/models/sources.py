"""Where a model can come from, as a registry tried in order.

    resolve_model("smollm2-135m-instruct")    # bundled default, no download
    resolve_model("/data/my-llama")           # a local HF folder
    resolve_model("model.Q4_K_M.gguf")        # de-quantised once, then cached
    resolve_model("Qwen/Qwen2.5-0.5B")        # hub id: cached snapshot or download
    resolve_model("runs/sft")                 # a run folder: its merged/ model (merged on demand) or final/

Every source returns a `ResolvedModel` whose `path` is a plain HF folder
(config.json + safetensors + tokenizer) so the rest of the engine never cares
where the weights came from. Every command (train, chat, eval, merge, export, plan,
data) resolves a model here, and every folder then goes through the same checks
(engine/models/checks.py): safetensors weights (never pickles), a tokenizer, no model
code run without model.trust_remote_code=true, and no reward model (stage=rm) where a
chat model is needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from engine.errors import ModelSourceError
from engine.models.checks import check_model_folder, check_run_stage, run_stage


@dataclass
class ResolvedModel:
    """A model ready to load: `path` is an HF folder on local disk."""

    name: str
    path: Path
    source: str
    run: Optional[Path] = None  # the run folder, when the model came from one
    stage: Optional[str] = None  # that run's training stage (sft, dpo, ..., rm)


@dataclass
class Source:
    name: str
    matches: Callable[[str], bool]
    resolve: Callable[[str, Optional[str]], ResolvedModel]


SOURCES: list[Source] = []


def register_source(name: str, matches: Callable[[str], bool]):
    """Decorator: add a source; sources are tried in registration order."""

    def deco(fn):
        SOURCES.append(Source(name, matches, fn))
        return fn

    return deco


def _is_bundled(spec: str) -> bool:
    from engine.models.bundled import BUNDLED

    return spec.lower() in BUNDLED


@register_source("bundled", _is_bundled)
def _bundled(spec: str, revision: Optional[str]) -> ResolvedModel:
    from engine.models.bundled import materialise_bundled

    return ResolvedModel(spec.lower(), materialise_bundled(spec.lower()), "bundled")


@register_source("gguf", lambda s: s.lower().endswith(".gguf"))
def _gguf(spec: str, revision: Optional[str]) -> ResolvedModel:
    from engine.models.gguf_import import materialise_gguf

    path = Path(spec).expanduser()
    if not path.is_file():
        raise ModelSourceError(f"GGUF file '{spec}' not found. Check the path, or use model=smollm2-135m-instruct.")
    return ResolvedModel(path.stem, materialise_gguf(path), "gguf")


def _is_run(spec: str) -> bool:
    from engine.runs import is_run_dir

    return is_run_dir(Path(spec).expanduser())


def finished_model_folder(run: Path) -> Optional[Path]:
    """A run's own whole-model folder without merging anything (no torch): merged/ when it is newer
    than the adapter, final/ for full fine-tunes, else None (the adapter must be merged first)."""
    merged = run / "merged"
    if (merged / "config.json").is_file() and not _adapter_newer(run):
        return merged
    if not _has_adapter(run) and (run / "final" / "config.json").is_file():
        return run / "final"  # full / freeze fine-tunes save whole weights
    return None


def _has_adapter(run: Path) -> bool:
    from engine.train.methods.saved import is_adapter_dir  # no torch

    return is_adapter_dir(run / "adapter")


def _adapter_newer(run: Path) -> bool:
    """The adapter changed after merged/ was written (the run was resumed or retrained): merge again."""
    adapter = run / "adapter" / "adapter_model.safetensors"
    merged = sorted((run / "merged").glob("*.safetensors"))
    return adapter.is_file() and bool(merged) and adapter.stat().st_mtime > min(f.stat().st_mtime for f in merged)


@register_source("run", _is_run)
def _run(spec: str, revision: Optional[str]) -> ResolvedModel:
    run = Path(spec).expanduser().resolve()
    stage = run_stage(run)
    if stage == "rm":  # a score head, not a language model: never merged; resolve_model's stage check decides
        return ResolvedModel(run.name, run / "adapter", "run", run, stage)
    folder = finished_model_folder(run)
    if folder is None and _has_adapter(run):
        from engine.train.merge import merge_run  # torch: only when a merge is really needed

        folder = Path(merge_run(run))
    if folder is None:
        raise ModelSourceError(f"Run folder '{run}' has no adapter/, merged/ or final/ model yet: the run did not "
                               f"finish. Resume it with `engine train --resume {run}`.")
    return ResolvedModel(run.name, folder, "run", run, stage)


def _looks_local(spec: str) -> bool:
    p = Path(spec).expanduser()
    return p.exists() or spec.startswith((".", "/", "~")) or spec.count("/") != 1


@register_source("folder", _looks_local)
def _folder(spec: str, revision: Optional[str]) -> ResolvedModel:
    path = Path(spec).expanduser()
    if not path.exists():
        raise ModelSourceError(
            f"Model '{spec}' is not a folder, a .gguf file, a bundled model or a hub id (owner/name). "
            f"Bundled models: smollm2-135m-instruct."
        )
    if not (path / "config.json").is_file():
        raise ModelSourceError(
            f"Model folder '{path}' has no config.json, so it is not a Hugging Face model folder. "
            f"Point model= at the folder that holds config.json and the *.safetensors files."
        )
    return ResolvedModel(path.name, path.resolve(), "folder")


@register_source("hub", lambda s: True)
def _hub(spec: str, revision: Optional[str]) -> ResolvedModel:
    import os

    from huggingface_hub import snapshot_download

    patterns = ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken"]
    try:  # a cached snapshot needs no network
        path = snapshot_download(spec, revision=revision, allow_patterns=patterns, local_files_only=True)
        return ResolvedModel(spec, Path(path), "hub")
    except Exception:
        pass
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false")
    try:
        if offline:
            raise OSError("HF_HUB_OFFLINE is set")
        path = snapshot_download(spec, revision=revision, allow_patterns=patterns)
    except Exception as e:  # network down, repo missing, gated, ...
        raise ModelSourceError(
            f"Could not download hub model '{spec}' ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}). "
            f"You seem to be offline or the id is wrong. Download it on a connected machine "
            f"(`hf download {spec} --local-dir ./{spec.split('/')[-1]}`, from huggingface_hub) and pass the folder: "
            f"model=./{spec.split('/')[-1]} — or use the bundled model=smollm2-135m-instruct."
        ) from None
    return ResolvedModel(spec, Path(path), "hub")


def resolve_model(spec: str, revision: Optional[str] = None, purpose: str = "causal-lm",
                  trust_remote_code: bool = False) -> ResolvedModel:
    """Turn a model spec into a checked local HF folder, trying each source in order.

    `purpose` is what the caller needs ("causal-lm": train, chat, eval, merge, export, plan;
    "reward": a stage=rm run for scoring; "tokenizer": only its tokenizer). The folder is
    checked for that purpose (engine.models.checks) before anything loads it: a problem
    raises ModelSourceError naming it and the fix. `trust_remote_code` is model.trust_remote_code.
    """
    spec = str(spec).strip()
    if not spec:
        raise ModelSourceError("No model given. Set model=smollm2-135m-instruct, a folder, a .gguf file or a hub id.")
    for source in SOURCES:
        if source.matches(spec):
            resolved = source.resolve(spec, revision)
            if resolved.run is not None:
                check_run_stage(resolved.run, purpose)
            check_model_folder(resolved.path, purpose, trust_remote_code)
            return resolved
    raise ModelSourceError(f"No model source accepts '{spec}'.")  # unreachable: hub matches all
