"""The checks every resolved model folder goes through, whatever command asked for it.

    check_model_folder(path, purpose="causal-lm", trust_remote_code=False)   # raises ModelSourceError
    check_run_stage(run_dir, purpose="causal-lm")                             # an `rm` run is not a chat model

One policy for train, chat, eval, merge, export and plan, so a folder that cannot be used gets
the same message from each of them before anything loads it: weights only as pickles (loading a
pickle can run code), no tokenizer, model code that would run from the folder without
`model.trust_remote_code=true`, or a reward model where a chat model is needed.

These checks read file names and small JSON/YAML files only: no torch, no transformers import
(the memory planner uses them too and must stay light). Nothing here ever runs code from a file.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from engine.errors import ModelSourceError

# What a caller needs the model for. A check names the purposes it applies to.
PURPOSES = {
    "causal-lm": "a chat / causal language model: train, chat, eval, merge, export, plan",
    "reward": "a reward model (stage=rm run): engine score, RL rewards",
    "tokenizer": "only the tokenizer (data inspection)",
    "shape": "only the architecture's shape (the memory planner: a folder with config.json alone will do)",
}

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
# Any of these makes AutoTokenizer work (fast tokenizer, SentencePiece, BPE/WordPiece vocabularies, tiktoken).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "spiece.model", "vocab.json", "vocab.txt", "sentencepiece.bpe.model")


@dataclass(frozen=True)
class FolderCheck:
    """One rule: `problem(path, trust_remote_code)` returns a message, or None when the folder passes."""

    name: str
    purposes: tuple[str, ...]
    problem: Callable[[Path, bool], Optional[str]]


CHECKS: list[FolderCheck] = []


def register_check(name: str, purposes: tuple[str, ...]):
    """Decorator: add a folder check; checks run in registration order, the first problem is raised."""

    def deco(fn):
        CHECKS.append(FolderCheck(name, purposes, fn))
        return fn

    return deco


def _weights(path: Path) -> list[Path]:
    return sorted(path.glob("*.safetensors"))


def _pickles(path: Path) -> list[Path]:
    return sorted(f for f in path.iterdir() if f.is_file() and f.suffix in PICKLE_SUFFIXES and f.name != "training_args.bin")


@register_check("no pickle weights", ("causal-lm", "reward", "shape"))
def _pickle_weights(path: Path, trust_remote_code: bool) -> Optional[str]:
    if _weights(path):
        return None  # transformers prefers safetensors when both are there, so a leftover .bin is harmless
    pickles = _pickles(path)
    if pickles:
        names = ", ".join(f.name for f in pickles[:3]) + (" ..." if len(pickles) > 3 else "")
        return (
            f"Model folder '{path}' holds its weights only as pickle files ({names}). edgetune refuses them: "
            f"loading a pickle can run any code hidden in it. Convert them to safetensors once, on a machine where "
            f"you trust the file (it writes model.safetensors beside them):\n"
            f"    python -c \"from transformers import AutoModelForCausalLM as M; "
            f"M.from_pretrained('{path}').save_pretrained('{path}')\"\n"
            f"or use a safetensors copy of the model (most hub repos have model.safetensors)."
        )
    return None


@register_check("safetensors weights", ("causal-lm", "reward"))
def _no_weights(path: Path, trust_remote_code: bool) -> Optional[str]:
    if _weights(path):
        return None
    return (
        f"Model folder '{path}' has no weights: no *.safetensors file. Point model= at the folder that holds "
        f"config.json and model.safetensors (or model-0000N-of-0000M.safetensors), or download the model again "
        f"(from the hub edgetune fetches only *.safetensors: a repo that ships only pytorch_model.bin needs converting, "
        f"see the pickle note in the README's Models section)."
    )


@register_check("tokenizer", ("causal-lm", "reward", "tokenizer"))
def _no_tokenizer(path: Path, trust_remote_code: bool) -> Optional[str]:
    if any((path / name).is_file() for name in TOKENIZER_FILES) or any(path.glob("*.tiktoken")):
        return None
    return (
        f"Model folder '{path}' has no tokenizer (none of {', '.join(TOKENIZER_FILES[:4])}, ...). Copy the tokenizer "
        f"files of the model it was made from into it, e.g. "
        f"python -c \"from transformers import AutoTokenizer; "
        f"AutoTokenizer.from_pretrained('BASE_MODEL').save_pretrained('{path}')\"."
    )


def _transformers_knows(model_type: str) -> bool:
    """Whether the installed transformers has its own code for `model_type` (found without importing it)."""
    spec = importlib.util.find_spec("transformers")
    if spec is None or not spec.submodule_search_locations:
        return False
    module = model_type.replace("-", "_")
    return any((Path(loc) / "models" / module).is_dir() for loc in spec.submodule_search_locations)


@register_check("remote code", ("causal-lm", "reward", "tokenizer", "shape"))
def _remote_code(path: Path, trust_remote_code: bool) -> Optional[str]:
    if trust_remote_code:
        return None
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # a missing or broken config.json is named by the loader that reads it
    auto_map = config.get("auto_map") or {}
    model_type = str(config.get("model_type") or "")
    # transformers ignores auto_map for architectures it implements itself (Phi-3 repos ship both).
    if not auto_map or (model_type and _transformers_knows(model_type)):
        return None
    files = sorted({str(v).split(".")[0] + ".py" for v in auto_map.values() if isinstance(v, str)})
    return (
        f"Model folder '{path}' needs Python code from its own files ({', '.join(files) or 'auto_map in config.json'}) "
        f"to load: its architecture ({model_type or 'no model_type'}) is not built into transformers. edgetune never "
        f"runs code from a model folder unless told to. Read those files; if you trust them, set "
        f"model.trust_remote_code=true. Otherwise pick a model of a supported architecture."
    )


def check_model_folder(path: str | Path, purpose: str = "causal-lm", trust_remote_code: bool = False) -> None:
    """Raise ModelSourceError naming the first problem of the folder for `purpose`; return when usable."""
    if purpose not in PURPOSES:
        raise ValueError(f"unknown purpose {purpose!r}; known: {', '.join(PURPOSES)}")
    path = Path(path).expanduser().resolve()  # messages name the same absolute folder whichever command asked
    for check in CHECKS:
        if purpose in check.purposes:
            problem = check.problem(path, trust_remote_code)
            if problem:
                raise ModelSourceError(problem)


# -- run folders ---------------------------------------------------------------------------------

STAGE_PURPOSES = {"rm": ("reward", "tokenizer")}  # any other stage trains a causal LM


def run_stage(run_dir: str | Path) -> str:
    """The `stage` a run folder was trained with (config.yaml); runs from before stages existed are sft."""
    import yaml

    try:
        data = yaml.safe_load((Path(run_dir) / "config.yaml").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as e:
        raise ModelSourceError(f"Cannot read {Path(run_dir) / 'config.yaml'} ({e}); is '{run_dir}' a run folder?") from None
    return str(data.get("stage") or "sft") if isinstance(data, dict) else "sft"


def check_run_stage(run_dir: str | Path, purpose: str = "causal-lm") -> str:
    """The run's stage, or ModelSourceError when that stage does not serve `purpose` (an rm run is no chat model)."""
    stage = run_stage(run_dir)
    allowed = STAGE_PURPOSES.get(stage, ("causal-lm", "tokenizer", "shape"))
    if purpose in allowed:
        return stage
    if stage == "rm":
        raise ModelSourceError(
            f"'{run_dir}' is a reward model (stage=rm): it scores answers; use it with `engine score {run_dir} "
            f"--data FILE` or as an RL reward, not for chat/export/training as a policy. Chat with, export or train "
            f"from a policy run (stage sft, dpo, orpo, simpo or kto) or its base model instead."
        )
    raise ModelSourceError(f"'{run_dir}' (stage={stage}) is a chat model, not a reward model: train one with stage=rm.")
