"""DPO throughput: edgetune's `stage=dpo` vs the plain TRL DPOTrainer + peft script a user would write.

    python benchmarks/dpo_throughput.py                     # 3 rounds, 4 steps each, CPU
    python benchmarks/dpo_throughput.py --runs 5 --steps 6

Same model (bundled SmolLM2-135M-Instruct), same pairs (assets/datasets/brief_pairs.jsonl), same
LoRA (r=16, alpha=32, all linear layers, dropout 0), same micro-batch (8 pairs), beta 0.1, lr,
max length 80, fp32 on the CPU. "Plain" is TRL's documented recipe: conversational
prompt/chosen/rejected records, `DPOTrainer(model, args=DPOConfig(...), peft_config=LoraConfig(...))`,
TRL tokenising and truncating itself (max_length=80, keep_start); on CPU-only torch it needs one
patch to run at all (TRL's fused LM head requires Triton), so it gets edgetune's plain-torch stand-in. edgetune runs the preset
assets/presets/cpu_dpo.yaml through its public entry point, and once more with
`dpo.precompute_ref=true` (reference log-probs computed before training).

Each variant runs in its own process (peak RSS is its own); rounds interleave the variants so the
machine's drift hits all alike. Throughput is pairs per second over the steps after the first
(warm-up), timed by the same callback from the start to the end of each optimizer step; the
precomputed variant's one-off reference pass is reported separately (it happens before training).
Printed: medians, the ratio to plain, and the median of the per-round ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

from harness import REPO, StepTimer, cpu_name, report, run_child, train_with_hook
DATA = REPO / "assets" / "datasets" / "brief_pairs.jsonl"
BATCH, MAX_LEN, LR, BETA = 8, 80, 2e-4, 0.1


def run_plain(steps: int) -> dict:
    """TRL's documented DPO + peft recipe, with the timing callback."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    from engine.models import resolve_model
    from engine.train.trl_compat import patch_trl_for_cpu

    # TRL 1.15's DPOTrainer cannot take a step on CPU-only torch (its fused LM head needs Triton); the plain
    # script gets edgetune's plain-torch stand-in, the smallest change that lets it run at all.
    patch_trl_for_cpu()
    path = str(resolve_model("smollm2-135m-instruct").path)
    rows = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    ds = Dataset.from_list([{"prompt": [{"role": "user", "content": r["prompt"]}],
                             "chosen": [{"role": "assistant", "content": r["chosen"]}],
                             "rejected": [{"role": "assistant", "content": r["rejected"]}]} for r in rows])
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    timer = StepTimer()
    args = DPOConfig(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=BATCH, learning_rate=LR, beta=BETA,
                     max_steps=steps, max_length=MAX_LEN, logging_steps=1, report_to=[], save_strategy="no",
                     use_cpu=True, bf16=False, gradient_checkpointing=False, disable_tqdm=True, seed=42)
    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")
    DPOTrainer(model=model, args=args, train_dataset=ds, processing_class=tok, peft_config=lora,
               callbacks=[timer]).train()
    return {"pairs_per_s": BATCH * (len(timer.times) - 1) / sum(timer.times[1:]), "steps": len(timer.times)}


def run_edgetune(steps: int, precompute: bool) -> dict:
    """`engine train assets/presets/cpu_dpo.yaml` through the public entry point, timed by the same callback."""
    from engine.config import load_config

    out = Path(tempfile.mkdtemp()) / "run"
    cfg = load_config(REPO / "assets/presets/cpu_dpo.yaml",
                      [f"output_dir={out}", f"max_steps={steps}", f"batch_size={BATCH}", f"max_len={MAX_LEN}",
                       f"lr={LR}", f"dpo.beta={BETA}", "train.save_steps=100000", f"dpo.precompute_ref={precompute}"])
    timer, built = StepTimer(), []

    def hook(trainer, build_s):
        built.append(build_s)  # with precompute_ref, the reference pass runs while the trainer is built
        trainer.add_callback(timer)

    train_with_hook(cfg, hook)
    return {"pairs_per_s": BATCH * (len(timer.times) - 1) / sum(timer.times[1:]), "steps": len(timer.times),
            "setup_s": round(built[-1], 1)}


def child(variant: str, steps: int) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    report(run_plain(steps) if variant == "plain" else run_edgetune(steps, variant == "precomputed"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.steps)
    variants = ("plain", "edgetune", "precomputed")
    results = {v: [] for v in variants}
    print(f"CPU: {cpu_name()} ({os.cpu_count()} cores); SmolLM2-135M, LoRA r16, {BATCH} pairs/step, max_len {MAX_LEN}, fp32")
    for i in range(args.runs):
        for v in variants:
            r = run_child(__file__, v, "--steps", str(args.steps))
            results[v].append(r)
            print(f"run {i + 1} {v:<12} {r['pairs_per_s']:7.3f} pairs/s  peak RSS {r['peak_rss_gb']:.2f} GB"
                  + (f"  (setup incl. reference pass {r['setup_s']} s)" if "setup_s" in r else ""), flush=True)
    med = {v: statistics.median(r["pairs_per_s"] for r in rs) for v, rs in results.items()}
    rss = {v: statistics.median(r["peak_rss_gb"] for r in rs) for v, rs in results.items()}
    print("\nbaseline: plain TRL DPOTrainer + peft_config (TRL tokenises; reference = adapter disabled)")
    for v in variants:
        paired = [e["pairs_per_s"] / p["pairs_per_s"] for p, e in zip(results["plain"], results[v])]
        print(f"{v:<12} median {med[v]:7.3f} pairs/s  peak RSS {rss[v]:.2f} GB   ratio {med[v] / med['plain']:.2f}x "
              f"pairs/s, {rss[v] / rss['plain']:.2f}x RSS; paired {statistics.median(paired):.2f}x "
              f"({', '.join(f'{r:.2f}' for r in paired)})")


if __name__ == "__main__":
    main()
