"""The CPU quickstart as QLoRA, lean vs peft's fp32 upcast vs the plain script a user would write.

    python benchmarks/quickstart_variants.py                        # 3 seeds, the whole quickstart (12 epochs)
    python benchmarks/quickstart_variants.py --seeds 1 --epochs 2   # a quick look
    python benchmarks/quickstart_variants.py --variants lean,lean-dropout
    python benchmarks/quickstart_variants.py --seeds 1 --steps 3 --variants plain,upcast,lean   # memory and step time

QLoRA on a CPU is slow (bitsandbytes de-quantises every linear per matmul): the whole quickstart is
an hour per run on a busy 2-core VM, so --steps N measures only N optimizer steps (quiz skipped).

Each variant is one whole command in its own process, on the bundled SmolLM2-135M-Instruct and the
quickstart data (assets/presets/cpu_quickstart.yaml: LoRA r=16 all-linear, lr 1e-3, batch 8), as
QLoRA (4-bit NF4 base) in bf16:

  plain          transformers Trainer + peft: BitsAndBytesConfig(4-bit), prepare_model_for_kbit_training,
                 LoRA (dropout 0), DataCollatorForSeq2Seq - what the peft/transformers docs show
  upcast         `engine train` with peft's fp32 upcast of the frozen embedding/norms (EDGETUNE_PEFT_UPCAST=1)
  lean           `engine train` as shipped: frozen float weights stay bf16 (engine/train/kbit_prep.py)
  lean-dropout   lean with lora.dropout=0.05 (the old default)

Measured: wall time of the whole command, peak RSS of its process (wait4's ru_maxrss), and for the
engine variants the held-out quiz (assets/datasets/quillon_heldout.jsonl, greedy, by each record's
`expect`) and the last logged training loss. Printed: per-seed values, the median over seeds and
the ratio of each median to plain's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import REPO, cpu_name
PRESET = REPO / "assets" / "presets" / "cpu_quickstart.yaml"
DATA = REPO / "assets" / "datasets" / "quillon_facts.jsonl"
HELDOUT = REPO / "assets" / "datasets" / "quillon_heldout.jsonl"
QLORA_BF16 = ["method=qlora", "quant.compute_dtype=bf16", f"data={DATA}", "train.save_steps=100000"]
VARIANTS = {  # name -> (overrides on the preset, extra environment); "plain" is the script below
    "upcast": ([*QLORA_BF16], {"EDGETUNE_PEFT_UPCAST": "1"}),
    "lean": ([*QLORA_BF16], {}),
    "lean-dropout": ([*QLORA_BF16, "lora.dropout=0.05"], {}),
    # the quickstart as shipped (LoRA on fp32, batch 8, dropout 0) and the defaults it could have had
    "lora": ([f"data={DATA}", "train.save_steps=100000"], {}),
    "lora-dropout": ([f"data={DATA}", "train.save_steps=100000", "lora.dropout=0.05"], {}),
    "lora-b4": ([f"data={DATA}", "train.save_steps=100000", "batch_size=4"], {}),
    "lora-b4-dropout": ([f"data={DATA}", "train.save_steps=100000", "batch_size=4", "lora.dropout=0.05"], {}),
    "lora-auto": ([f"data={DATA}", "train.save_steps=100000", "batch_size=auto"], {}),
}


def plain_script(seed: int, epochs: float, out: str, steps: int) -> None:
    """The QLoRA script a user would write from the peft/transformers docs (runs in the child process)."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import (AutoModelForCausalLM, BitsAndBytesConfig, DataCollatorForSeq2Seq, Trainer,
                              TrainingArguments)

    from engine.data.dataset import load_examples, tokenise
    from engine.models import resolve_model
    from engine.models.loading import load_tokenizer

    tok = load_tokenizer("smollm2-135m-instruct")
    records = tokenise(load_examples(str(DATA)).examples, tok, 256).records
    ds = Dataset.from_dict({"input_ids": [r.input_ids for r in records], "labels": [r.labels for r in records],
                            "attention_mask": [[1] * len(r.input_ids) for r in records]})
    bnb = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                             bnb_4bit_compute_dtype=torch.bfloat16)
    model = AutoModelForCausalLM.from_pretrained(str(resolve_model("smollm2-135m-instruct").path),
                                                 quantization_config=bnb, dtype=torch.bfloat16, device_map={"": "cpu"})
    model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear",
                                             task_type="CAUSAL_LM"))
    args = TrainingArguments(output_dir=out, per_device_train_batch_size=8, learning_rate=1e-3, num_train_epochs=epochs,
                             warmup_steps=0.05, lr_scheduler_type="cosine", bf16=True, logging_steps=1, report_to=[],
                             save_strategy="no", use_cpu=True, disable_tqdm=True, seed=seed, max_steps=steps or -1)
    Trainer(model=model, args=args, train_dataset=ds, data_collator=DataCollatorForSeq2Seq(tok, padding=True)).train()


def run_child(cmd: list[str], env: dict) -> tuple[float, float]:
    """(wall seconds, peak RSS GB) of one command in its own process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr.read().decode()[-3000:]}")
    return wall, usage.ru_maxrss * 1024 / 1e9  # Linux reports kB


def step_seconds(steps: list) -> float:
    """Median seconds per optimizer step after the first (warm-up), from the events' timestamps."""
    times = [e["time"] for e in steps]
    gaps = [b - a for a, b in zip(times[1:], times[2:])] or [b - a for a, b in zip(times, times[1:])]
    return statistics.median(gaps) if gaps else float("nan")


def measure(variant: str, seed: int, epochs: float, work: Path, steps: int) -> dict:
    """One variant and seed, or its saved result when `work` already holds it (a re-run resumes)."""
    out = work / f"{variant}-{seed}"
    saved = out / "result.json"
    if saved.is_file():
        return json.loads(saved.read_text())
    if variant == "plain":
        cmd = [sys.executable, __file__, "--plain-child", str(out), "--seed", str(seed), "--epochs", str(epochs),
               "--steps", str(steps)]
        wall, rss = run_child(cmd, {"PYTHONPATH": str(REPO)})
        result = {"wall_s": wall, "peak_rss_gb": rss}
    else:
        overrides, env = VARIANTS[variant]
        if out.exists():  # an interrupted run of an earlier invocation: start it again
            import shutil

            shutil.rmtree(out)
        cmd = [sys.executable, "-m", "engine", "train", str(PRESET), *overrides,
               f"seed={seed}", f"epochs={epochs}", f"max_steps={steps}", f"output_dir={out}"]
        wall, rss = run_child(cmd, {"PYTHONPATH": str(REPO), **env})
        result = {"wall_s": wall, "peak_rss_gb": rss, **run_figures(out, steps)}
    saved.write_text(json.dumps(result))
    return result


def run_figures(out: Path, steps: int) -> dict:
    """Step time, losses and (for a whole run) the held-out quiz of a finished engine run, the quiz asked in a
    child process: one with the code on disk now, whatever this long-running parent imported."""
    from engine.events import read_events

    events = [e for e in read_events(out / "events.jsonl") if e["type"] == "step"]
    figures = {"step_s": step_seconds(events), "final_loss": events[-1]["loss"], "losses": [e["loss"] for e in events]}
    if not steps:
        child = subprocess.run([sys.executable, __file__, "--quiz-child", str(out)], cwd=REPO, capture_output=True,
                               text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
        if child.returncode != 0:
            raise SystemExit(f"quiz of {out} failed:\n{child.stderr[-3000:]}")
        figures["quiz"] = int(child.stdout.strip().splitlines()[-1])
    return figures


def quiz_child(run: str) -> None:
    from engine.train.evaluate import quiz

    items = quiz(run, str(HELDOUT), with_base=False)
    print(sum(bool(i.correct.get("tuned")) for i in items))


def plot_losses(results: dict, path: Path) -> None:
    """Training loss per step of every engine variant and seed (one colour a variant) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=110)
    for colour, (variant, runs) in zip(plt.rcParams["axes.prop_cycle"].by_key()["color"], results.items()):
        for i, r in enumerate(x for x in runs if "losses" in x):
            ax.plot(range(1, len(r["losses"]) + 1), r["losses"], color=colour, alpha=0.75, lw=1.2,
                    label=variant if i == 0 else None)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("CPU quickstart, one line per seed")
    fig.tight_layout()
    fig.savefig(path)
    print(f"loss curves: {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=1, help="seeds run from this one up")
    ap.add_argument("--epochs", type=float, default=12)
    ap.add_argument("--steps", type=int, default=0, help="only this many optimizer steps (0: the whole run, quiz included)")
    ap.add_argument("--variants", default="plain,upcast,lean", help="comma-separated: plain," + ",".join(VARIANTS))
    ap.add_argument("--json", default=None, help="write every result (loss curves included) to this JSON file")
    ap.add_argument("--plot", default=None, help="draw the engine variants' loss curves, one line per seed, to this PNG")
    ap.add_argument("--work", default=None, help="folder for the runs; a re-run with the same folder reuses finished runs")
    ap.add_argument("--plain-child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--quiz-child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--seed", type=int, default=42, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.plain_child:
        return plain_script(args.seed, args.epochs, args.plain_child, args.steps)
    if args.quiz_child:
        return quiz_child(args.quiz_child)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    variants = args.variants.split(",")
    results: dict = {v: [] for v in variants}
    work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="quickstart-variants-"))
    work.mkdir(parents=True, exist_ok=True)
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for v in variants:  # interleaved, so a slow spell of a shared machine hits every variant
            r = measure(v, seed, args.epochs, work, args.steps)
            results[v].append(r)
            shown = {k: round(x, 3) for k, x in r.items() if k != "losses"}
            print(f"seed {seed} {v:<13} {json.dumps(shown)}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    if args.plot:
        plot_losses(results, Path(args.plot))
    length = f"{args.steps} steps" if args.steps else f"{args.epochs:g} epochs"
    print(f"\nmedian of {args.seeds} seed(s), {length}, on {cpu_name()} (QLoRA bf16 unless named lora*):")
    base = results.get("plain")
    for v, rs in results.items():
        med = {k: statistics.median(r[k] for r in rs) for k in rs[0] if k != "losses"}
        line = f"{v:<13} wall {med['wall_s']:7.1f} s   peak RSS {med['peak_rss_gb']:.2f} GB"
        if "step_s" in med:
            line += f"   step {med['step_s']:.1f} s"
        if "quiz" in med:
            line += f"   quiz {'/'.join(str(r['quiz']) for r in rs)} of 10   final loss {med['final_loss']:.3f}"
        if base and v != "plain":
            pw = statistics.median(r["wall_s"] for r in base)
            pr = statistics.median(r["peak_rss_gb"] for r in base)
            line += f"   vs plain: {pw / med['wall_s']:.2f}x faster, {med['peak_rss_gb'] / pr:.2f}x RSS"
        print(line)


if __name__ == "__main__":
    main()
