"""A GPU check for any session lent a CUDA machine: does edgetune's GPU path work, and is the planner right?

    bash benchmarks/gpu_check.sh              # the same, with a hard time limit and nothing left running
    python benchmarks/gpu_check.py --out /tmp/gpu_check

Runs, each part on its own (a failure is printed in the table and the next part runs):
  qlora-hf        SFT QLoRA on the bundled SmolLM2-135M, backend hf         (train.backend=hf)
  qlora-unsloth   the same on the unsloth backend (skipped when unsloth is not installed)
  dpo             DPO (LoRA) on the brief pairs
  ddp-2           SFT QLoRA with dist.num_processes=2 (DDP)                  (2+ GPUs only)
  fsdp-2          SFT LoRA with dist.num_processes=2 dist.strategy=fsdp      (2+ GPUs only)
  fsdp-qlora-2    SFT QLoRA with dist.num_processes=2 dist.strategy=fsdp     (2+ GPUs only)
  host-embedding  SFT QLoRA on a small untied Llama (SmolLM2's vocabulary) with the table in host RAM
  device-embedding  the same with train.offload_embedding=false: same losses, 2 x vocab x hidden bytes more VRAM
and prints one table: status, seconds, loss first -> last, measured peak VRAM (torch.cuda.max_memory_allocated,
GiB, the training process or rank 0) and the planner's prediction for the same config (`engine plan --json`
on this GPU; it includes the CUDA context and allocator slack, which max_memory_allocated does not see).
Each run is a few dozen steps (under 8 minutes for all on one recent GPU).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SFT = ["assets/presets/cpu_quickstart.yaml", "quant.compute_dtype=auto", "max_steps=30", "epochs=1", "batch_size=8"]
DPO = ["assets/presets/cpu_dpo.yaml", "quant.compute_dtype=auto", "max_steps=20", "epochs=1", "batch_size=4"]
# name -> (config args, GPUs needed, a module it needs or None)
CHECKS = {
    "qlora-hf": (SFT + ["method=qlora", "train.backend=hf"], 1, None),
    "qlora-unsloth": (SFT + ["method=qlora", "train.backend=unsloth"], 1, "unsloth"),
    "dpo": (DPO + ["train.backend=hf"], 1, None),
    "ddp-2": (SFT + ["method=qlora", "train.backend=hf", "dist.num_processes=2"], 2, None),
    "fsdp-2": (SFT + ["method=lora", "train.backend=hf", "dist.num_processes=2", "dist.strategy=fsdp"], 2, None),
    "fsdp-qlora-2": (SFT + ["method=qlora", "train.backend=hf", "dist.num_processes=2", "dist.strategy=fsdp"], 2, None),
    # the bundled SmolLM2 ties its head to the table, so these build an untied model ({untied}: untied_model())
    "host-embedding": (SFT + ["model={untied}", "method=qlora", "train.backend=hf", "train.offload_embedding=true"], 1, None),
    "device-embedding": (SFT + ["model={untied}", "method=qlora", "train.backend=hf", "train.offload_embedding=false"], 1, None),
}


def untied_model(out: Path) -> Path:
    """A small random Llama with SmolLM2's tokenizer and an untied head (built once per --out folder)."""
    folder = out / "untied-llama"
    if not (folder / "config.json").is_file():
        import torch
        from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

        from engine.models import resolve_model

        tok = AutoTokenizer.from_pretrained(str(resolve_model("smollm2-135m-instruct").path))
        torch.manual_seed(0)
        config = LlamaConfig(vocab_size=len(tok), hidden_size=512, intermediate_size=1408, num_hidden_layers=4,
                             num_attention_heads=8, num_key_value_heads=2, tie_word_embeddings=False,
                             bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
        LlamaForCausalLM(config).to(torch.bfloat16).save_pretrained(str(folder))
        tok.save_pretrained(str(folder))
    return folder


def gpu_count() -> int:
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(line.startswith("GPU ") for line in out.splitlines())


def engine(args: list[str], timeout: float, log: Path) -> tuple[int, str]:
    """Run `python -m engine ARGS` in its own process group; kill the group on timeout. (exit code, stdout)."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "engine", *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                                stderr=err, text=True, start_new_session=True)
        try:
            out, _ = proc.communicate(timeout=timeout)
            return proc.returncode, out
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            return 124, ""
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # nothing of this part keeps running
            except ProcessLookupError:
                pass


def planned_gib(args: list[str], log: Path) -> float | None:
    rc, out = engine(["plan", *args, "--json"], 120, log)
    if rc != 0:
        return None
    plan = json.loads(out)
    for row in plan.get("per_gpu") or []:
        if row["chosen"]:
            return row["per_gpu_gb"]
    return plan["total_gb"]


def run_check(name: str, out: Path, timeout: float) -> dict:
    args, _, _ = CHECKS[name]
    if any("{untied}" in a for a in args):
        args = [a.replace("{untied}", str(untied_model(out))) for a in args]
    run_dir = out / name
    shutil.rmtree(run_dir, ignore_errors=True)
    start = time.time()
    rc, _ = engine(["train", *args, f"output_dir={run_dir}", "--no-progress"], timeout, out / f"{name}.log")
    seconds = time.time() - start
    events = []
    if (run_dir / "events.jsonl").is_file():
        for line in (run_dir / "events.jsonl").read_text().splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                pass
    steps = [e for e in events if e["type"] == "step"]
    errors = [e["message"] for e in events if e["type"] == "error"]
    status = "ok" if rc == 0 else "timeout" if rc == 124 else "FAILED"
    peak = max((e.get("peak_memory_gb") or 0 for e in steps), default=0) * 1e9 / 2**30
    note = errors[-1][:90] if errors else ("" if rc == 0 else _last_line(out / f"{name}.log"))
    return {"check": name, "status": status, "seconds": round(seconds), "steps": len(steps),
            "loss": f"{steps[0]['loss']:.3f} -> {steps[-1]['loss']:.3f}" if steps else "-",
            "peak_gib": round(peak, 2) if steps else None,
            "planned_gib": planned_gib(args, out / f"{name}.plan.log"), "note": note}


def _last_line(log: Path) -> str:
    lines = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()] if log.is_file() else []
    return lines[-1][:90] if lines else ""


def table(rows: list[dict]) -> str:
    head = "| check | status | s | steps | loss | peak VRAM GiB | planned GiB | note |\n|---|---|---|---|---|---|---|---|"
    body = [f"| {r['check']} | {r['status']} | {r['seconds']} | {r['steps']} | {r['loss']} | "
            f"{r['peak_gib'] if r['peak_gib'] is not None else '-'} | "
            f"{r['planned_gib'] if r['planned_gib'] is not None else '-'} | {r['note']} |" for r in rows]
    return "\n".join([head, *body])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="/tmp/gpu_check", help="where the runs and logs go")
    ap.add_argument("--only", default="", help="comma-separated check names (default: all that apply)")
    ap.add_argument("--timeout", type=float, default=150, help="seconds per check")
    args = ap.parse_args()
    # the shell script's time limit sends SIGTERM: unwind, so the running part's process group is killed
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(124))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    gpus = gpu_count()
    names = [n for n in (args.only.split(",") if args.only else CHECKS) if n]
    rows = []
    for name in names:
        _, need, module = CHECKS[name]
        if gpus < need:
            rows.append({"check": name, "status": "skipped", "seconds": 0, "steps": 0, "loss": "-", "peak_gib": None,
                         "planned_gib": None, "note": f"needs {need} GPUs, {gpus} visible"})
        elif module and subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True).returncode:
            rows.append({"check": name, "status": "skipped", "seconds": 0, "steps": 0, "loss": "-", "peak_gib": None,
                         "planned_gib": None, "note": f"{module} is not installed"})
        else:
            try:
                rows.append(run_check(name, out, args.timeout))
            except Exception as e:  # one part's failure never stops the others
                rows.append({"check": name, "status": "ERROR", "seconds": 0, "steps": 0, "loss": "-", "peak_gib": None,
                             "planned_gib": None, "note": f"{type(e).__name__}: {e}"[:90]})
        print(f"{name}: {rows[-1]['status']} {rows[-1]['note']}", file=sys.stderr, flush=True)
        (out / "table.md").write_text(f"GPUs visible: {gpus}\n\n" + table(rows) + "\n")  # so far, if stopped
    text = f"GPUs visible: {gpus}\n\n" + table(rows)
    print(text)
    return 0 if all(r["status"] in ("ok", "skipped") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
