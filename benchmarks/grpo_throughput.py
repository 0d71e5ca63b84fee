"""GRPO throughput: edgetune's `stage=grpo` vs the plain TRL GRPOTrainer + peft script a user would write.

    python benchmarks/grpo_throughput.py                     # 3 rounds, 4 steps each, CPU
    python benchmarks/grpo_throughput.py --runs 5 --steps 6 --completion-len 48

Same model (bundled SmolLM2-135M-Instruct), same prompts (assets/datasets/brief_prompts.jsonl), same
LoRA (r=16, alpha=32, all linear layers, dropout 0), same batch (8 answers = 2 prompts x 4
generations), the same length reward (target 8 words), beta 0.04, lr, fp32 on the CPU. "Plain" is
TRL's documented recipe: `GRPOTrainer(model, reward_funcs=[fn], args=GRPOConfig(...),
peft_config=LoraConfig(...))` on conversational prompts (on CPU-only torch with edgetune's stand-in for
TRL's Triton-only fused LM head, as in dpo_throughput.py). edgetune runs assets/presets/cpu_grpo.yaml
through its public entry point twice: as the preset has it (gradient checkpointing off) and with
train.gradient_checkpointing=true, which is what the plain script gets from TRL's GRPOConfig default,
so peak memory is compared like for like.

Each variant runs in its own process (peak RSS is its own); rounds interleave the variants. Throughput
is sampled answers per second over the steps after the first (warm-up), timed by the same callback;
the share of each step spent sampling and scoring (TRL's `_generate_and_score_completions`, wrapped the
same way in both) says where the time goes: sampling vs learning. Printed: medians and ratios to plain.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from harness import REPO, StepTimer, cpu_name, report, run_child, train_with_hook

DATA = REPO / "assets" / "datasets" / "brief_prompts.jsonl"
BATCH, GENERATIONS, LR, BETA, TARGET = 8, 4, 2e-4, 0.04, 8


def time_sampling(trainer) -> list:
    """Wrap the trainer's sample-and-score phase with a timer; returns the list it fills (seconds per call)."""
    spent = []
    inner = trainer._generate_and_score_completions

    def timed(*args, **kwargs):
        t0 = time.perf_counter()
        out = inner(*args, **kwargs)
        spent.append(time.perf_counter() - t0)
        return out

    trainer._generate_and_score_completions = timed
    return spent


def length_reward(completions, **kwargs):
    """The built-in `length` reward written as a user would (1 at TARGET words)."""
    out = []
    for c in completions:
        n = len(c[-1]["content"].split())
        out.append(1.0 / (1.0 + abs(n - TARGET) / TARGET))
    return out


def summary(timer, sampling) -> dict:
    steps = timer.times[1:]
    return {"answers_per_s": BATCH * len(steps) / sum(steps), "steps": len(timer.times),
            "sampling_share": sum(sampling[1:len(timer.times)]) / sum(steps)}


def run_plain(steps: int, completion_len: int) -> dict:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from engine.models import resolve_model
    from engine.train.trl_compat import patch_trl_for_cpu

    # TRL 1.15's fused LM head needs Triton; on CPU-only torch the plain script gets edgetune's plain-torch
    # stand-in, the smallest change that lets it run at all (as in benchmarks/dpo_throughput.py).
    patch_trl_for_cpu()
    path = str(resolve_model("smollm2-135m-instruct").path)
    rows = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    ds = Dataset.from_list([{"prompt": [{"role": "user", "content": r["prompt"]}]} for r in rows])
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    timer = StepTimer()
    args = GRPOConfig(output_dir=tempfile.mkdtemp(), per_device_train_batch_size=BATCH, num_generations=GENERATIONS,
                      max_completion_length=completion_len, learning_rate=LR, beta=BETA, max_steps=steps,
                      logging_steps=1, report_to=[], save_strategy="no", use_cpu=True, bf16=False,
                      disable_tqdm=True, seed=42)
    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")
    trainer = GRPOTrainer(model=model, reward_funcs=[length_reward], args=args, train_dataset=ds,
                          processing_class=tok, peft_config=lora, callbacks=[timer])
    sampling = time_sampling(trainer)
    trainer.train()
    return summary(timer, sampling)


def run_edgetune(steps: int, completion_len: int, checkpointing: bool = False) -> dict:
    from engine.config import load_config

    out = Path(tempfile.mkdtemp()) / "run"
    cfg = load_config(REPO / "assets/presets/cpu_grpo.yaml",
                      [f"output_dir={out}", f"max_steps={steps}", f"batch_size={BATCH}", f"lr={LR}",
                       f"rl.beta={BETA}", f"rl.num_generations={GENERATIONS}", f"rl.max_completion_len={completion_len}",
                       "train.save_steps=100000", "rl.log_completions=0",
                       f"train.gradient_checkpointing={str(checkpointing).lower()}"])
    timer, spent = StepTimer(), []

    def hook(trainer, build_s):
        trainer.add_callback(timer)
        spent[:] = [time_sampling(trainer)]

    train_with_hook(cfg, hook)
    return summary(timer, spent[0])


def child(variant: str, steps: int, completion_len: int) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    report(run_plain(steps, completion_len) if variant == "plain"
           else run_edgetune(steps, completion_len, checkpointing=variant == "edgetune-gc"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--completion-len", type=int, default=48)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.steps, args.completion_len)
    variants = ("plain", "edgetune", "edgetune-gc")
    results = {v: [] for v in variants}
    print(f"CPU: {cpu_name()} ({os.cpu_count()} cores); SmolLM2-135M, LoRA r16, {BATCH} answers/step "
          f"({GENERATIONS} per prompt), answers up to {args.completion_len} tokens, fp32")
    for i in range(args.runs):
        for v in variants:
            r = run_child(__file__, v, "--steps", str(args.steps), "--completion-len", str(args.completion_len))
            results[v].append(r)
            print(f"run {i + 1} {v:<10} {r['answers_per_s']:7.3f} answers/s  sampling {r['sampling_share']:.0%} of "
                  f"the step  peak RSS {r['peak_rss_gb']:.2f} GB", flush=True)
    med = {v: statistics.median(r["answers_per_s"] for r in rs) for v, rs in results.items()}
    rss = {v: statistics.median(r["peak_rss_gb"] for r in rs) for v, rs in results.items()}
    share = {v: statistics.median(r["sampling_share"] for r in rs) for v, rs in results.items()}
    print("\nbaseline: plain TRL GRPOTrainer + peft_config (reference = adapter disabled; TRL's default "
          "gradient checkpointing on)\nedgetune: the preset (checkpointing off: faster, more activation memory); "
          "edgetune-gc: the preset with train.gradient_checkpointing=true, the plain script's setting")
    for v in variants:
        print(f"{v:<10} median {med[v]:7.3f} answers/s  peak RSS {rss[v]:.2f} GB  sampling {share[v]:.0%}   ratio "
              f"{med[v] / med['plain']:.2f}x answers/s, {rss[v] / rss['plain']:.2f}x RSS")


if __name__ == "__main__":
    main()
