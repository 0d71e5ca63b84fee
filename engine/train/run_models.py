"""Load what a finished run holds, for evaluation and scoring (never for training).

    start, tuned, tokenizer = load_policy("runs/dpo")      # context managers yielding models
    with start() as m: ...                                  # the model training started from
    with tuned() as m: ...                                  # the trained policy
    model, tokenizer = load_reward_model("runs/rm")         # a reward model's scorer

Everything loads in fp32 on the CPU or the GPU; a LoRA run's start model is the tuned model
with its adapter disabled, so the two share one copy of the weights.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

from engine.errors import EdgetuneError


def _device():
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def start_model_dir(cfg) -> Path:
    """The HF folder a run started from (a model, or an earlier run's merged result)."""
    from engine.models import resolve_model

    return resolve_model(cfg.model.name_or_path, cfg.model.revision, trust_remote_code=cfg.model.trust_remote_code).path


def load_policy(run: str | Path):
    """(start, tuned, tokenizer) for a causal-LM run: `start()`/`tuned()` are context managers yielding a model."""
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    from engine.config import load_config
    from engine.models.loading import tokenizer_from_dir

    run = Path(run)
    cfg = load_config(run / "config.yaml")
    if cfg.stage == "rm":
        raise EdgetuneError(f"'{run}' is a reward model (stage=rm): score pairs with `engine score {run} --data FILE`.")
    hf_logging.disable_progress_bar()
    start_dir = start_model_dir(cfg)
    adapter = run / "adapter"
    device = _device()
    from engine.train.methods.saved import adapter_kind, load_adapter

    if adapter_kind(adapter) == "peft":
        base = AutoModelForCausalLM.from_pretrained(str(start_dir), dtype=torch.float32)
        model = load_adapter(base, adapter).to(device).eval()

        @contextlib.contextmanager
        def start():
            with model.disable_adapter():
                yield model

        @contextlib.contextmanager
        def tuned():
            yield model

        return start, tuned, tokenizer_from_dir(adapter)
    final = run / "final"
    module_adapter = adapter_kind(adapter) == "module"  # edgetune's bottleneck adapters: added to a fresh base
    if not module_adapter and not (final / "config.json").is_file():
        raise EdgetuneError(f"'{run}' has no adapter/ or final/: the run did not finish. Resume it with "
                            f"`engine train --resume {run}`.")

    def loader(path: Path, with_adapter: bool = False):
        @contextlib.contextmanager
        def load():
            model = AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)
            model = (load_adapter(model, adapter) if with_adapter else model).to(device).eval()
            try:
                yield model
            finally:
                del model

        return load

    if module_adapter:
        return loader(start_dir), loader(start_dir, with_adapter=True), tokenizer_from_dir(adapter)
    return loader(start_dir), loader(final), tokenizer_from_dir(final)


def load_reward_model(run: str | Path):
    """(model, tokenizer) of a reward-model run: the sequence-classification base with the run's adapter."""
    import torch
    from transformers import AutoModelForSequenceClassification
    from transformers.utils import logging as hf_logging

    from engine.config import load_config
    from engine.models.loading import tokenizer_from_dir

    run = Path(run)
    cfg = load_config(run / "config.yaml")
    if cfg.stage != "rm":
        raise EdgetuneError(f"'{run}' is a stage={cfg.stage} run, not a reward model: `engine score` needs a run "
                            f"trained with stage=rm (`engine eval {run} --data FILE` scores a policy's pairs).")
    hf_logging.disable_progress_bar()
    adapter, final = run / "adapter", run / "final"
    tok_dir = adapter if adapter.is_dir() else final
    tokenizer = tokenizer_from_dir(tok_dir)
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the score head's weights come from the adapter, not the base
    try:
        from engine.train.methods.saved import is_adapter_dir, load_adapter

        if is_adapter_dir(adapter):
            base = AutoModelForSequenceClassification.from_pretrained(str(start_model_dir(cfg)), num_labels=1,
                                                                       dtype=torch.float32)
            model = load_adapter(base, adapter)
        elif (final / "config.json").is_file():
            model = AutoModelForSequenceClassification.from_pretrained(str(final), dtype=torch.float32)
        else:
            raise EdgetuneError(f"'{run}' has no adapter/ or final/: the run did not finish. Resume it with "
                                f"`engine train --resume {run}`.")
    finally:
        hf_logging.set_verbosity(level)
    model.config.pad_token_id = tokenizer.pad_token_id
    return model.to(_device()).eval(), tokenizer
