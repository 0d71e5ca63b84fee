"""Run a comparison: each method trained by `engine train` in its own process (so its peak memory is
its own and a crash stops only that method), one after another, into one comparison folder.

    out/
      compare.json          the rows so far (rewritten after every method: a comparison is resumable)
      compare.md/.html/.png the table and the plots
      <method>.yaml         the config each method ran with
      <method>/             its run folder (events.jsonl, adapter/ or final/)

Same model, data, budget (epochs or max_steps) and seed for every method; the learning rate is the
config's times the method's `lr_factor` (the config's lr is taken as LoRA's) unless lr_policy='same'.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable, Optional

from engine.compare.row import Row
from engine.config import save_config
from engine.events import read_events
from engine.train.methods import get_method, resolved_load_in

ROWS = "compare.json"
Say = Callable[[str], None]


def method_config(cfg, name: str, out: Path, lr_policy: str):
    """The comparison's config for one method: its own run folder, base format and learning rate."""
    method = get_method(name)
    mcfg = copy.deepcopy(cfg)
    mcfg.method = name
    mcfg.output_dir = str(out / name)
    mcfg.quant.load_in = "auto"  # each method on the base format it is made for (qlora: 4-bit)
    if mcfg.lora.plus_lr_ratio and not hasattr(method, "dora"):
        mcfg.lora.plus_lr_ratio = 0.0
    if mcfg.lora.init != "gaussian" and resolved_load_in(mcfg) != "none":
        mcfg.lora.init = "gaussian"
    if lr_policy == "recommended":
        mcfg.optim.lr = cfg.optim.lr * method.lr_factor
    mcfg.export.targets = []
    return mcfg


def export_support(name: str) -> str:
    e = get_method(name).export
    if not e.merge:
        return f"no ({e.label}; chat/serve the run)"
    if get_method(name).saved_as == "full":
        return "GGUF/ONNX"
    return "merge -> GGUF/ONNX" + (" + LoRA GGUF" if e.gguf_adapter else "")


def load_rows(out: Path) -> dict:
    path = out / ROWS
    if not path.is_file():
        return {}
    return {d["method"]: Row.from_dict(d) for d in json.loads(path.read_text())["rows"]}


def save_rows(out: Path, rows: dict, meta: dict) -> None:
    tmp = out / f".{ROWS}.partial"
    tmp.write_text(json.dumps({"meta": meta, "rows": [r.to_dict() for r in rows.values()]}, indent=1))
    tmp.replace(out / ROWS)


def _finished(run: Path) -> Optional[dict]:
    events = run / "events.jsonl"
    if not events.is_file():
        return None
    last = [e for e in read_events(events) if e["type"] == "run_finished"]
    return last[-1] if last and last[-1]["status"] == "completed" else None


def _train(cfg_path: Path, run: Path, say: Say) -> tuple[int, str]:
    """`engine train` in a child process; (exit code, its last error line). Progress is relayed as lines."""
    from engine.train import checkpoints as ckpt

    cmd = [sys.executable, "-m", "engine", "train", str(cfg_path), "--events", "-", "--no-progress"]
    if ckpt.list_checkpoints(run):
        cmd += ["--resume", "latest"]
        say(f"  resuming from {ckpt.latest_checkpoint(run)}")
    elif run.exists():
        shutil.rmtree(run)  # started but never checkpointed: nothing to keep
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    error = ""
    try:
        for line in proc.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if ev.get("type") == "step" and ev.get("step", 0) % 5 == 0:
                say(f"  step {ev['step']}/{ev.get('total_steps', '?')}  loss {ev.get('loss', float('nan')):.4f}")
            elif ev.get("type") == "error":
                error = f"{ev.get('message', '')} {ev.get('hint', '')}".strip()
        stderr = proc.stderr.read()
        code = proc.wait()
    except BaseException:
        proc.terminate()  # Ctrl-C: the child checkpoints on SIGTERM; the comparison resumes from there
        proc.wait()
        raise
    if code and not error:
        lines = [ln for ln in stderr.strip().splitlines() if ln.strip()]
        error = lines[-1] if lines else f"exit code {code}"
    return code, error


def _read_run(row: Row, run: Path) -> None:
    events = list(read_events(run / "events.jsonl"))
    started = [e for e in events if e["type"] == "run_started"][-1]
    row.trainable_params, row.total_params = started.get("trainable_params"), started.get("total_params")
    steps = [e for e in events if e["type"] == "step"]
    row.losses = [(e["step"], e["loss"]) for e in steps if e.get("loss") is not None]
    row.peak_memory_gb = max((e.get("peak_memory_gb") or 0 for e in steps), default=None)
    metrics = [e for e in events if e["type"] == "run_finished"][-1].get("metrics", {})
    row.tokens_per_s, row.seconds, row.train_loss = metrics.get("tokens_per_s"), metrics.get("seconds"), metrics.get("train_loss")


def _evaluate(row: Row, run: Path, heldout: Optional[str], answers: bool, max_len: int, base: dict) -> None:
    if not heldout:
        return
    from engine.train.evaluate import evaluate, quiz

    results = evaluate(str(run), heldout, max_len, compare_base="loss" not in base)
    by_name = {r.name: r for r in results}
    if "base" in by_name:
        base["loss"] = by_name["base"].loss
    row.base_heldout_loss, row.heldout_loss = base.get("loss"), by_name["tuned"].loss
    if answers:
        items = quiz(str(run), heldout, with_base="answers" not in base)
        scored = [i for i in items if i.correct.get("tuned") is not None]
        if "answers" not in base:
            base["answers"] = sum(bool(i.correct.get("base")) for i in scored)
        row.answers_correct, row.answers_total = sum(i.correct["tuned"] for i in scored), len(scored)
        row.base_answers_correct = base["answers"]


def run_comparison(cfg, methods: list, out: Path, lr_policy: str = "recommended", heldout: Optional[str] = None,
                   answers: bool = False, say: Say = print) -> list:
    """Train and measure every method (finished ones are kept); returns the rows in `methods` order."""
    out.mkdir(parents=True, exist_ok=True)
    rows = load_rows(out)
    meta = {"model": cfg.model.name_or_path, "data": cfg.data.path, "stage": cfg.stage, "seed": cfg.seed,
            "epochs": cfg.optim.epochs, "max_steps": cfg.optim.max_steps, "lr": cfg.optim.lr, "lr_policy": lr_policy,
            "heldout": heldout}
    base: dict = {}
    for old in rows.values():  # the base model's held-out figures are the same for every method
        if old.base_heldout_loss is not None:
            base["loss"] = old.base_heldout_loss
        if old.base_answers_correct is not None:
            base["answers"] = old.base_answers_correct
    for i, name in enumerate(methods, 1):
        method = get_method(name)
        run = out / name
        row = rows.get(name)
        if row is not None and row.status == "completed" and _finished(run):
            say(f"[{i}/{len(methods)}] {name}: kept (finished earlier)")
            continue
        mcfg = method_config(cfg, name, out, lr_policy)
        row = Row(name, method.group, lr=mcfg.optim.lr, base_format=resolved_load_in(mcfg), export=export_support(name))
        cfg_path = out / f"{name}.yaml"
        save_config(mcfg, cfg_path)
        say(f"[{i}/{len(methods)}] {name} ({method.group}, lr {mcfg.optim.lr:g}, base {row.base_format})")
        code, error = (0, "") if _finished(run) else _train(cfg_path, run, say)
        if code:
            row.status = "refused" if "cannot" in error or "ConfigError" in error else "failed"
            row.error = error[:400]
            say(f"  {row.status}: {row.error}")
        else:
            _read_run(row, run)
            try:
                _evaluate(row, run, heldout, answers, cfg.sequence.max_len, base)
                row.status = "completed"
            except Exception as e:  # an evaluation that fails is reported in the table, the others go on
                row.status, row.error = "failed", f"evaluation: {type(e).__name__}: {e}"[:400]
        rows[name] = row
        save_rows(out, rows, meta)
    return [rows[m] for m in methods if m in rows]
