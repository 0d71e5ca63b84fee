"""Memory planner accuracy on CPU: measured peak RSS of real training steps vs `engine plan`.

    python benchmarks/plan_accuracy.py                 # the whole grid (about an hour on 2 busy cores)
    python benchmarks/plan_accuracy.py --quick         # three points, a few minutes
    python benchmarks/plan_accuracy.py --only 1,7 --repeats 3 --markdown

Baseline: the measured peak. Each grid point runs in a fresh process that does what
`engine train` does on a CPU before and during training: imports torch + transformers + peft +
trl, pins glibc's mmap threshold (`engine.plan.pin_malloc_threshold`), loads the tokenizer and
the model (the bundled SmolLM2-135M-Instruct, or a tiny random Llama with its vocabulary)
in the compute dtype with SDPA attention, LoRA on all linear layers or QLoRA (NF4 + double
quant, the base prepared by engine/train/kbit_prep.py as `engine train` does: no fp32 upcast),
non-reentrant gradient checkpointing when asked,
then runs STEPS AdamW steps on full-length micro-batches of random tokens (the worst case the
plan sizes for) with the model's own loss, and reports its peak RSS (VmHWM: engine/process_memory.py). The planner's
CPU estimate for the same config is printed next to it as a ratio planned / measured; the
target is every ratio within 0.80-1.20. The median of --repeats runs is used (RSS peaks
repeat within about 1%).
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
STEPS = 3  # with the threshold pinned the peak repeats from the second step on
TOLERANCE = 0.20

# (model, method, micro-batch, max_len, gradient checkpointing, lora dropout)
GRID = [
    ("smollm2-135m", "lora", 1, 128, False, 0.0),
    ("smollm2-135m", "lora", 2, 256, False, 0.0),
    ("smollm2-135m", "lora", 8, 128, False, 0.0),
    ("smollm2-135m", "lora", 1, 1024, False, 0.0),
    ("smollm2-135m", "lora", 4, 512, False, 0.0),
    ("smollm2-135m", "lora", 2, 256, False, 0.05),
    ("smollm2-135m", "lora", 2, 512, True, 0.0),
    ("smollm2-135m", "lora", 8, 256, True, 0.0),
    ("smollm2-135m", "lora", 4, 1024, True, 0.0),
    ("smollm2-135m", "qlora", 2, 128, False, 0.0),
    ("smollm2-135m", "qlora", 4, 256, True, 0.0),
    ("smollm2-135m", "qlora", 1, 1024, False, 0.0),
    ("tiny", "lora", 8, 512, False, 0.0),
    ("tiny", "lora", 4, 1024, True, 0.0),
    ("tiny", "qlora", 2, 1024, False, 0.0),
]
QUICK = [0, 6, 9]

# A tiny Llama with SmolLM2's 49k vocabulary: the loss buffers dominate, unlike the 135M model.
TINY = dict(hidden_size=256, intermediate_size=768, num_hidden_layers=4, num_attention_heads=4,
            num_key_value_heads=2, vocab_size=49152, tie_word_embeddings=True, max_position_embeddings=2048)


# --- the measured side (runs in a child process) --------------------------------------------

def measure(point: dict) -> dict:
    """Train STEPS steps as the trainer would and return the peak RSS in GB."""
    from engine.process_memory import peak_rss_bytes

    start = time.perf_counter()
    import torch
    import transformers  # noqa: F401
    import trl  # noqa: F401  (the trainer's process has it imported)
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.plan import pin_malloc_threshold

    pin_malloc_threshold()
    torch.manual_seed(0)
    AutoTokenizer.from_pretrained(point["tokenizer"])
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[point["dtype"]]
    kwargs = dict(dtype=dtype, attn_implementation="sdpa")
    if point["method"] == "qlora":
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dtype)
        kwargs["device_map"] = {"": "cpu"}
    model = AutoModelForCausalLM.from_pretrained(point["model_dir"], **kwargs)
    model.config.use_cache = False
    ckpt = {"use_reentrant": False}
    if point["method"] == "qlora":  # what engine train does to a k-bit base (frozen float weights stay 16-bit)
        from engine.config import load_config
        from engine.train.kbit_prep import prepare_kbit_base

        model = prepare_kbit_base(model, load_config(base={"method": "qlora"}), point["gc"])
    elif point["gc"]:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=ckpt)
        model.enable_input_require_grads()
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=point["dropout"],
                                             target_modules="all-linear", task_type="CAUSAL_LM"))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    vocab = model.config.vocab_size
    for _ in range(STEPS):
        ids = torch.randint(3, vocab, (point["batch"], point["seq"]))
        loss = model(input_ids=ids, labels=ids).loss  # the outputs (and their logits) are dropped here
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    peak = peak_rss_bytes() / 2**30
    return {"peak_gb": peak, "seconds": time.perf_counter() - start}


# --- the planned side -----------------------------------------------------------------------

def planned_gb(point: dict) -> float:
    from engine.config import load_config
    from engine.plan import build_plan
    from engine.plan.gpu_catalog import Target

    cfg = load_config(base={
        "model": point["model_dir"], "method": point["method"], "batch_size": point["batch"],
        "max_len": point["seq"], "train": {"gradient_checkpointing": point["gc"]},
        "lora": {"r": 16, "alpha": 32, "dropout": point["dropout"], "target_modules": "all-linear"},
        "optim": {"optimizer": "adamw_torch"},
    })
    return build_plan(cfg, Target("cpu", "benchmark", 1024.0), advise=False).total_gb


def prepare_models(workdir: Path) -> dict[str, Path]:
    from transformers import LlamaConfig, LlamaForCausalLM

    from engine.models import resolve_model

    smol = resolve_model("smollm2-135m-instruct").path
    tiny = workdir / "tiny-llama"
    if not (tiny / "config.json").is_file():
        import torch

        torch.manual_seed(0)
        LlamaForCausalLM(LlamaConfig(**TINY)).save_pretrained(str(tiny))
    return {"smollm2-135m": smol, "tiny": tiny}


def run_point(point: dict, repeats: int) -> dict:
    peaks, seconds = [], []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, __file__, "--child", json.dumps(point)], capture_output=True,
                             text=True, cwd=REPO, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
        if out.returncode != 0:
            raise RuntimeError(f"measurement failed for {point}:\n{out.stderr[-3000:]}")
        result = json.loads(out.stdout.strip().splitlines()[-1])
        peaks.append(result["peak_gb"])
        seconds.append(result["seconds"])
    return {"measured_gb": statistics.median(peaks), "runs": peaks, "seconds": statistics.median(seconds)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="Only a few grid points.")
    ap.add_argument("--only", default="", help="Comma-separated grid indices to run (0-based).")
    ap.add_argument("--repeats", type=int, default=1, help="Runs per point; the median is used.")
    ap.add_argument("--markdown", action="store_true", help="Print the table as Markdown (for the README).")
    ap.add_argument("--save", default="", help="Also write the results as JSON to this file.")
    ap.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(measure(json.loads(args.child))))
        return 0

    from engine.plan.run_spec import compute_dtype

    indices = [int(i) for i in args.only.split(",") if i] or (QUICK if args.quick else range(len(GRID)))
    workdir = Path(os.environ.get("EDGETUNE_BENCH_DIR") or tempfile.mkdtemp(prefix="plan-accuracy-"))
    models = prepare_models(workdir)
    tokenizer = str(models["smollm2-135m"])
    rows = []
    for i in indices:
        name, method, batch, seq, gc, dropout = GRID[i]
        point = {"model_dir": str(models[name]), "tokenizer": tokenizer, "method": method, "batch": batch,
                 "seq": seq, "gc": gc, "dropout": dropout, "dtype": compute_dtype("auto", "cpu")}
        measured = run_point(point, args.repeats)
        planned = planned_gb(point)
        row = {"index": i, "model": name, "method": method, "batch": batch, "max_len": seq, "checkpointing": gc,
               "dropout": dropout, "planned_gb": round(planned, 3), **measured,
               "ratio": round(planned / measured["measured_gb"], 3)}
        rows.append(row)
        print(f"[{i:2}] {name:<13} {method:<5} b{batch:<2} len {seq:<5} ckpt {'on ' if gc else 'off'} "
              f"drop {dropout:<4}  measured {row['measured_gb']:.2f} GB  planned {planned:.2f} GB  "
              f"ratio {row['ratio']:.2f}  ({row['seconds']:.0f}s)", flush=True)
    worst = max(rows, key=lambda r: abs(r["ratio"] - 1))
    print(f"\nbaseline: measured peak RSS; ratio = planned / measured. Worst ratio {worst['ratio']:.2f} "
          f"(grid point {worst['index']}); {sum(abs(r['ratio'] - 1) <= TOLERANCE for r in rows)}/{len(rows)} "
          f"within +/-{TOLERANCE:.0%}.")
    if args.markdown:
        print("\n| model | method | micro-batch x max_len | checkpointing | measured GB | planned GB | planned / measured |")
        print("|---|---|---|---|---|---|---|")
        for r in rows:
            extra = f", dropout {r['dropout']}" if r["dropout"] else ""
            print(f"| {r['model']} | {r['method']}{extra} | {r['batch']} x {r['max_len']} | "
                  f"{'on' if r['checkpointing'] else 'off'} | {r['measured_gb']:.2f} | {r['planned_gb']:.2f} | "
                  f"{r['ratio']:.2f} |")
    if args.save:
        Path(args.save).write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return 0 if all(abs(r["ratio"] - 1) <= TOLERANCE for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
