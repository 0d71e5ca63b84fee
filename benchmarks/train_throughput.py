"""Training throughput: edgetune vs the plain transformers+peft script a user would write.

    python benchmarks/train_throughput.py            # 3 runs each, 8 steps, CPU
    python benchmarks/train_throughput.py --runs 5 --steps 10
    python benchmarks/train_throughput.py --plain-dtype bf16 --edgetune-dtype bf16 --runs 1 --steps 3

Same model (bundled SmolLM2-135M-Instruct), same data (assets/datasets/quillon_facts.jsonl,
rendered and masked the same way), same LoRA (r=16, alpha=32, all linear layers), same
micro-batch (8) and learning rate. "Plain" is the transformers-docs recipe: from_pretrained
with the checkpoint's default dtype (the hub checkpoint is bf16; `--plain-dtype fp32` for a
second baseline), Trainer + DataCollatorForSeq2Seq (padding per batch), no packing.
edgetune picks its own compute dtype (fp32 on a CPU without native bf16) unless
`--edgetune-dtype` sets it, for a same-dtype comparison.

Each variant runs in its own process (so peak RSS is its own). Throughput is trained
(non-padding) tokens per second over the steps after the first (warm-up), both timed by the
same callback from the start to the end of each optimizer step. Printed: the median of the
runs and the ratio edgetune / plain.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from harness import REPO, report, run_child, train_with_hook

DATA = REPO / "assets" / "datasets" / "quillon_facts.jsonl"


def _records():
    from engine.data.dataset import load_examples, tokenise
    from engine.models.loading import load_tokenizer

    tok = load_tokenizer("smollm2-135m-instruct")
    return tok, tokenise(load_examples(str(DATA)).examples, tok, 256).records


def StepTimer():
    """A Trainer callback timing each optimizer step (on_step_begin -> on_step_end), the same for both variants.

    `tokens` holds the Trainer's num_input_tokens_seen per step (used for edgetune; the plain script
    counts its collator's attention masks, the same non-padding tokens).
    """
    from transformers import TrainerCallback

    class _StepTimer(TrainerCallback):
        def __init__(self):
            self.times, self.tokens, self.seen = [], [], 0

        def on_step_begin(self, args, state, control, **kw):
            self.t0 = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            self.times.append(time.perf_counter() - self.t0)
            self.tokens.append(state.num_input_tokens_seen - self.seen)
            self.seen = state.num_input_tokens_seen

    return _StepTimer()


def run_plain(steps: int, dtype: str) -> dict:
    """What the transformers + peft docs show, with a timing callback."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, DataCollatorForSeq2Seq, Trainer, TrainingArguments

    from engine.models import resolve_model

    tok, records = _records()
    ds = Dataset.from_dict({"input_ids": [r.input_ids for r in records], "labels": [r.labels for r in records],
                            "attention_mask": [[1] * len(r.input_ids) for r in records]})
    model = AutoModelForCausalLM.from_pretrained(str(resolve_model("smollm2-135m-instruct").path),
                                                 dtype={"bf16": torch.bfloat16, "fp32": torch.float32}[dtype])
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", task_type="CAUSAL_LM"))
    timer = StepTimer()
    tokens = []

    collator = DataCollatorForSeq2Seq(tok, padding=True)
    orig = collator.__call__

    def counting(features):
        batch = orig(features)
        tokens.append(int(batch["attention_mask"].sum()))
        return batch

    args = TrainingArguments(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=8, learning_rate=1e-3,
                             max_steps=steps, logging_steps=1, report_to=[], save_strategy="no", use_cpu=True,
                             disable_tqdm=True, seed=42)
    Trainer(model=model, args=args, train_dataset=ds, data_collator=counting, callbacks=[timer]).train()
    return {"tokens_per_s": sum(tokens[1:steps]) / sum(timer.times[1:]), "steps": len(timer.times)}


def run_edgetune(steps: int, dtype: str) -> dict:
    """`engine train` on the quickstart preset with the same batch and LoRA, timed by the same step callback."""
    from engine.config import load_config

    out = Path(tempfile.mkdtemp()) / "run"
    cfg = load_config(REPO / "assets/presets/cpu_quickstart.yaml",
                      [f"output_dir={out}", f"max_steps={steps}", "batch_size=8", "lora.dropout=0.0",
                       "train.save_steps=100000", f"data={DATA}", f"quant.compute_dtype={dtype}"])
    timer = StepTimer()
    train_with_hook(cfg, lambda trainer, build_s: trainer.add_callback(timer))
    # trained tokens per step from the Trainer's own count (non-padding, see engine/train/recipes/sft.py), skip the warm-up step
    return {"tokens_per_s": sum(timer.tokens[1:]) / sum(timer.times[1:]), "steps": len(timer.times)}


def child(variant: str, steps: int, dtype: str) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    report(run_edgetune(steps, dtype) if variant == "edgetune" else run_plain(steps, dtype))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--plain-dtype", default="bf16", choices=["bf16", "fp32"], help="dtype of the plain baseline")
    ap.add_argument("--edgetune-dtype", default="auto", choices=["auto", "bf16", "fp32"],
                    help="edgetune's quant.compute_dtype (auto: its own pick, fp32 on CPUs without native bf16)")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--child-dtype", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.steps, args.child_dtype or args.plain_dtype)
    results = {"plain": [], "edgetune": []}
    for i in range(args.runs):
        for variant in ("plain", "edgetune"):  # interleaved so machine noise hits both
            # the child's dtype: the plain script's, or edgetune's compute_dtype ('auto' = its own pick)
            dtype = args.plain_dtype if variant == "plain" else args.edgetune_dtype
            r = run_child(__file__, variant, "--steps", str(args.steps), "--child-dtype", dtype)
            results[variant].append(r)
            print(f"run {i + 1} {variant:<9} {r['tokens_per_s']:8.1f} tok/s  peak RSS {r['peak_rss_gb']:.2f} GB", flush=True)
    med = {v: statistics.median(r["tokens_per_s"] for r in rs) for v, rs in results.items()}
    rss = {v: statistics.median(r["peak_rss_gb"] for r in rs) for v, rs in results.items()}
    print(f"\nbaseline: plain transformers Trainer + peft ({args.plain_dtype}, DataCollatorForSeq2Seq); "
          f"edgetune compute dtype: {args.edgetune_dtype}")
    print(f"plain     median {med['plain']:8.1f} trained tok/s   peak RSS {rss['plain']:.2f} GB")
    print(f"edgetune  median {med['edgetune']:8.1f} trained tok/s   peak RSS {rss['edgetune']:.2f} GB")
    print(f"ratio     {med['edgetune'] / med['plain']:.2f}x tokens/s   {rss['edgetune'] / rss['plain']:.2f}x peak RSS")
    # each round runs the two back to back: the median of the per-round ratios is the steadier figure on a
    # machine whose speed drifts (a shared VM), since a slow spell hits both halves of a round alike
    paired = [e["tokens_per_s"] / p["tokens_per_s"] for p, e in zip(results["plain"], results["edgetune"])]
    print(f"paired    {statistics.median(paired):.2f}x tokens/s (median of the per-round ratios "
          f"{', '.join(f'{r:.2f}' for r in paired)})")


if __name__ == "__main__":
    main()
