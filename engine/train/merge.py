"""`engine merge`: fold a run's adapter (LoRA family, (IA)^3, VeRA, ...) into a 16/32-bit copy of the base.

Soft prompts and bottleneck adapters change no weight, so there is nothing to fold: merge
refuses them with the reason (engine/train/methods: each method's `export`).

Never merges into 4-bit weights (QLoRA runs are merged into a de-quantised
base, as the QLoRA paper recommends). Before it reports success it checks that
the merged model's logits equal base+adapter logits on sample prompts (max abs
diff <= 1e-4 in fp32) and differ from the base's, so a silent no-op merge or a
broken one cannot pass. Written to a temp folder, renamed when verified.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from engine.errors import EdgetuneError
from engine.models.param_count import param_count

SAMPLE_PROMPTS = ["What is the capital of France?", "Write one sentence about the sea.", "How long does the Quillon Q7 battery last?"]
DTYPES = ("auto", "bf16", "fp16", "fp32")


@dataclass
class MergeReport:
    out: Path
    max_abs_diff: float  # merged vs base+adapter (fp32)
    base_diff: float  # merged vs base: must be > 0


def _sample_batch(tokenizer):
    texts = [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
             for p in SAMPLE_PROMPTS]
    return tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)


def merge_run(run_dir: str | Path, out: Optional[str | Path] = None, dtype: str = "auto") -> Path:
    """Merge <run>/adapter into the base and write <run>/merged (or `out`); returns the folder."""
    return merge_adapter(run_dir, out, dtype).out


def merge_adapter(run_dir: str | Path, out: Optional[str | Path] = None, dtype: str = "auto") -> MergeReport:
    import torch
    from transformers import AutoModelForCausalLM

    from engine.config import load_config
    from engine.models import resolve_model
    from engine.models.loading import tokenizer_from_dir

    from engine.train.methods.saved import is_adapter_dir, is_mergeable_adapter, load_adapter

    run_dir = Path(run_dir)
    adapter = run_dir / "adapter"
    if not is_adapter_dir(adapter):
        raise EdgetuneError(f"'{run_dir}' has no adapter/ with a trained adapter: it is not a finished adapter run. "
                            f"Finish it with `engine train --resume {run_dir}`.")
    mergeable, why = is_mergeable_adapter(adapter)
    if not mergeable:
        raise EdgetuneError(f"'{run_dir}' cannot be merged: {why}")
    if dtype not in DTYPES:
        raise EdgetuneError(f"--dtype {dtype} is unknown; allowed values: {', '.join(DTYPES)}.")
    cfg = load_config(run_dir / "config.yaml")
    base_dir = resolve_model(cfg.model.name_or_path, cfg.model.revision, trust_remote_code=cfg.model.trust_remote_code).path
    from engine.vision import is_vlm_folder

    if is_vlm_folder(base_dir):  # a vision-language model: verified on prompts with an image
        from engine.vision.merge import merge_vlm_adapter

        return merge_vlm_adapter(run_dir, adapter, base_dir, cfg, out, dtype)
    tokenizer = tokenizer_from_dir(adapter, cfg.model.chat_template)
    # Merge and verify in full precision whatever the output dtype: bf16 rounding would hide a
    # bad merge. Small models merge in fp64, so the check measures the merge, not fp32 summation
    # order (W+BA)x vs Wx+B(Ax), which alone reaches ~1e-4 on 49k-wide logits.
    work_dtype = torch.float64 if param_count(base_dir) < 2e9 else torch.float32
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # "Loading weights"/"Writing model shards" bars: merge prints its own lines
    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=work_dtype)
    model = load_adapter(model, adapter)
    batch = _sample_batch(tokenizer)
    merged_model, diff, base_diff = merge_checked(model, batch)
    out_dtype = _out_dtype(dtype, base_dir)
    final = Path(out) if out else run_dir / "merged"
    tmp = final.with_name(f".{final.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        merged_model.to(out_dtype).save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        merged_model.generation_config.save_pretrained(str(tmp))
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if e.errno == 28:
            raise EdgetuneError(f"Disk full while writing {final}; nothing was changed. Free space and run engine merge again.") from None
        raise
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    return MergeReport(final, diff, base_diff)


def _out_dtype(dtype: str, base_dir: Path):
    import json

    import torch

    table = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
    if dtype != "auto":
        return table[dtype]
    saved = json.loads((base_dir / "config.json").read_text()).get("dtype") or json.loads((base_dir / "config.json").read_text()).get("torch_dtype")
    return {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(saved, torch.float32)


def merge_checked(model, batch):
    """Fold the adapter into the base and check it on `batch`: merged logits equal base+adapter (<= 1e-4)
    and differ from the base (an empty adapter is an error). Returns the merged model and both largest differences."""
    import torch

    with torch.no_grad():
        tuned = model(**batch).logits
        with model.disable_adapter():
            base = model(**batch).logits
        merged_model = model.merge_and_unload()
        merged = merged_model(**batch).logits
    mask = batch["attention_mask"].bool()
    diff = (merged - tuned)[mask].abs().max().item()
    base_diff = (merged - base)[mask].abs().max().item()
    if diff > 1e-4:
        raise EdgetuneError(f"Merge check failed: merged logits differ from base+adapter by {diff:.2e} (> 1e-4). Nothing was written.")
    if base_diff == 0.0:
        raise EdgetuneError("Merge check failed: the merged model equals the base model, so the adapter is empty (did training run?).")
    return merged_model, diff, base_diff
