"""A stand-in for `engine` in the app's tests: prints schema-valid events, fast and on cue.

    EDGETUNE_ENGINE="python tests/app/fake_engine.py" edgetune

`train [CONFIG] [key=value ...] [--resume RUN] --events -` writes a run folder
(config.yaml, events.jsonl, checkpoints/step-N) and streams events built with
engine.events.make_event, so they match the schema the real engine uses.
FAKE_ENGINE_MODE picks a behaviour: normal, error (an `error` event, exit 2),
crash (dies with a traceback, exit 1), ignore_term (ignores SIGTERM, must be
killed), usage (a one-line `error:` on stderr like the CLI, exit 2).
FAKE_ENGINE_STEPS (default 6) and FAKE_ENGINE_DELAY (seconds per step, 0.05).
`stage=dpo` (or a config file with `stage:`) makes it a preference run: config.yaml
gets the stage, run_started carries it and every step event carries the recipe's
`metrics` with the keys of the issue-14 contract (none for sft).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import yaml

from engine.events import SCHEMA, make_event

FILL = {"kind": "runtime", "hint": "", "paths": {}, "metrics": {}, "config": {}, "backend_reason": "fake",
        "dtype": "fp32", "trainable_params": 1000, "total_params": 100000, "grad_norm": 1.0, "perplexity": 1.0,
        "level": "warning", "text": "", "adapter": None, "train_loss": None, "seconds": 0.0, "eval_loss": None,
        "loss": None, "resumed_from": None, "best": False}

stop_requested = False


def preference_metrics(step: int, steps: int) -> dict:
    """Rewards that part as training goes on: chosen up, rejected down, accuracy towards 1."""
    chosen, rejected = 0.05 * step, -0.04 * step
    return {"reward_chosen": chosen, "reward_rejected": rejected, "reward_margin": chosen - rejected,
            "reward_accuracy": min(1.0, 0.5 + 0.5 * step / steps)}


# stage -> the step event's `metrics` at (step, steps), per the contract
STAGE_METRICS = {
    "sft": lambda step, steps: None,
    "dpo": preference_metrics,
    "simpo": preference_metrics,
    "orpo": lambda step, steps: {**preference_metrics(step, steps), "log_odds_ratio": -0.7 + 0.1 * step},
    "kto": lambda step, steps: {**{k: v for k, v in preference_metrics(step, steps).items() if k != "reward_accuracy"},
                                "kl": 0.02 * step},
    "rm": lambda step, steps: {"accuracy": min(1.0, 0.5 + 0.5 * step / steps), "margin": 0.3 * step},
}


class Emitter:
    def __init__(self, run_dir: Path):
        self.log = open(run_dir / "events.jsonl", "a", encoding="utf-8")

    def emit(self, names: tuple, **fields) -> None:
        """Emit under the first of `names` the schema knows, filling its other required fields."""
        name = next(n for n in names if n in SCHEMA)
        for req in SCHEMA[name]:
            if req not in fields:
                fields[req] = fields.get("eval_loss") if req == "loss" and "eval_loss" in fields else FILL.get(req)
        line = json.dumps(make_event(name, **fields))
        print(line, flush=True)
        self.log.write(line + "\n")
        self.log.flush()


def parse(argv: list[str]) -> dict:
    out = {"config": None, "overrides": {}, "resume": None}
    it = iter(argv)
    for a in it:
        if a == "--resume":
            out["resume"] = next(it)
        elif a == "--events":
            next(it)
        elif "=" in a:
            k, v = a.split("=", 1)
            out["overrides"][k] = v
        else:
            out["config"] = a
    return out


def checkpoint(run_dir: Path, step: int, em: Emitter) -> None:
    path = run_dir / "checkpoints" / f"step-{step}"
    path.mkdir(parents=True, exist_ok=True)
    (path / "state.json").write_text(json.dumps({"step": step}))
    em.emit(("checkpoint",), step=step, path=str(path))


def train(args: dict, mode: str) -> int:
    global stop_requested
    if mode == "usage":
        print("error: Config key 'lr' (command line) got 'abc'; expected float.", file=sys.stderr)
        return 2
    steps = int(os.environ.get("FAKE_ENGINE_STEPS", "6"))
    delay = float(os.environ.get("FAKE_ENGINE_DELAY", "0.05"))
    if args["resume"]:
        run_dir = Path(args["resume"])
    else:
        run_dir = Path(args["overrides"].get("output_dir", "runs/fake").strip('"'))
    run_dir.mkdir(parents=True, exist_ok=True)
    if not (run_dir / "config.yaml").exists():
        from_file = yaml.safe_load(Path(args["config"]).read_text()) if args["config"] else {}
        stage = args["overrides"].get("stage", (from_file or {}).get("stage", "")).strip('"')
        # (only a run given a stage records one: the app's tests also run on engines whose config has none)
        (run_dir / "config.yaml").write_text(
            (f"stage: {stage}\n" if stage else "") + f"method: lora\nmodel:\n  name_or_path: {args['overrides'].get('model.name_or_path', 'smollm2-135m-instruct')}\n"
            f"data:\n  path: {args['overrides'].get('data.path', 'data.jsonl')}\n")
    stage = (yaml.safe_load((run_dir / "config.yaml").read_text()) or {}).get("stage", "sft")
    done = sorted(int(p.name[5:]) for p in (run_dir / "checkpoints").glob("step-*")) if args["resume"] else []
    start = done[-1] if done else 0
    em = Emitter(run_dir)
    signal.signal(signal.SIGTERM, signal.SIG_IGN if mode == "ignore_term" else lambda *_: globals().update(stop_requested=True))
    em.emit(("run_started", "run_start"), run_dir=str(run_dir), model="fake", method="lora", backend="hf",
            device="cpu", stage=stage, train_records=40, eval_records=4, total_steps=steps,
            resumed_from=str(run_dir / "checkpoints" / f"step-{start}") if start else None)
    em.emit(("plan",), total_gb=1.25, batch_size=8, gradient_checkpointing=False)
    for step in range(start + 1, steps + 1):
        time.sleep(delay)
        loss = 3.0 / step
        metrics = STAGE_METRICS[stage](step, steps)
        em.emit(("step", "train_loss"), step=step, total_steps=steps, epoch=step / steps, loss=loss,
                lr=1e-3 * (1 - step / (steps + 1)), tokens_per_s=800.0 + step, peak_memory_gb=0.9,
                **({"metrics": metrics} if metrics else {}))
        if step % 2 == 0:
            em.emit(("eval",), step=step, eval_loss=loss * 1.1, loss=loss * 1.1)
            checkpoint(run_dir, step, em)
        if mode == "error" and step == 3:
            em.emit(("error",), kind="nan", message="loss became NaN/inf at step 3",
                    hint="lower the learning rate (now 0.001)")
            em.emit(("run_finished", "run_end"), status="failed", step=step, paths={"run_dir": str(run_dir)},
                    metrics={"seconds": 0.1})
            return 2
        if mode == "crash" and step == 3:
            print("Traceback (most recent call last):\n  File \"x.py\", line 1\nRuntimeError: boom", file=sys.stderr, flush=True)
            os._exit(1)
        if stop_requested:
            checkpoint(run_dir, step, em)
            em.emit(("run_finished", "run_end"), status="interrupted", step=step,
                    paths={"run_dir": str(run_dir)}, metrics={"seconds": 0.1})
            return 130
    (run_dir / "adapter").mkdir(exist_ok=True)
    em.emit(("run_finished", "run_end"), status="completed", step=steps,
            paths={"run_dir": str(run_dir), "adapter": str(run_dir / "adapter")},
            metrics={"train_loss": 3.0 / steps, "seconds": 0.3}, adapter=str(run_dir / "adapter"),
            train_loss=3.0 / steps, seconds=0.3)
    return 0


def option(argv: list[str], name: str, default=None):
    return argv[argv.index(name) + 1] if name in argv else default


def export(argv: list[str], mode: str) -> int:
    """`export gguf|onnx SOURCE ... --out DIR --events -`: progress events, files, verify.json, Modelfile."""
    target = argv[0]
    # like the real exporters: GGUF files go into --out (default <run>/exports); ONNX's --out is its own folder
    default = Path(argv[1]) / "exports"
    out = Path(option(argv, "--out", default if target == "gguf" else default / f"onnx-{option(argv, '--precision')}"))
    if target == "onnx":
        out = out.parent
    out.mkdir(parents=True, exist_ok=True)
    em = Emitter(out)
    names = [f"model-{q}.gguf" for q in option(argv, "--quant", "q8_0").split(",")] if target == "gguf" else \
        [f"onnx-{option(argv, '--precision', 'int4')}"]
    for i in range(5):
        time.sleep(0.02)
        em.emit(("export_progress",), target=target, stage=f"writing {names[0]}", fraction=(i + 1) / 5)
    if mode == "export_error":
        em.emit(("error",), kind="model", message="GGUF export does not support the architecture GPT2LMHeadModel",
                hint="export it to ONNX instead")
        return 2
    files = {}
    for n in names:
        p = out / n
        p.mkdir(exist_ok=True) if target == "onnx" else p.write_bytes(b"GGUF" + b"\0" * 100)
        files[n] = {"file": n, "type": n.split("-")[-1].replace(".gguf", ""), "size_bytes": 104, "tokens_checked": 120,
                    "tokens_matching": 120, "nmse": 2e-6, "top1": 0.995, "kl_mean": 0.001, "stop_check": "pass",
                    "passed": mode != "verify_fail", "problems": [] if mode != "verify_fail" else ["top-1 80% < 99%"]}
    if target == "onnx":  # the ONNX exporter's verify.json: one report with a summary
        (out / names[0] / "verify.json").write_text(json.dumps(
            {"passed": mode != "verify_fail", "failures": [], "precision": "int4",
             "summary": {"nmse": 0.01, "top1": 0.97, "kl": 0.02, "tokenizer_ok": True, "free_run_stops": "3/3"}}))
    else:
        (out / "verify.json").write_text(json.dumps({"files": files}))
    if target == "gguf":
        (out / "Modelfile").write_text('FROM ./model-q8_0.gguf\nTEMPLATE """{{ .Prompt }}"""\nPARAMETER stop "<|im_end|>"\n')
    return 1 if mode == "verify_fail" else 0


def main(argv: list[str]) -> int:
    mode = os.environ.get("FAKE_ENGINE_MODE", "normal")
    if argv[:1] == ["train"]:
        return train(parse(argv[1:]), mode)
    if argv[:1] == ["export"]:
        return export(argv[1:], mode)

    print(f"error: fake engine does not do {argv[:1]}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
