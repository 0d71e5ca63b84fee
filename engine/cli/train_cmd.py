"""`engine train CONFIG [key=value ...]`: fine-tune and leave a run folder behind."""

from __future__ import annotations

import sys


def add_parser(sub) -> None:
    p = sub.add_parser(
        "train", help="Fine-tune a model (SFT, DPO/ORPO/SimPO/KTO alignment, reward model; LoRA/QLoRA/DoRA/full/freeze) and write a run folder.",
        description="Fine-tune a model. Example: engine train assets/presets/cpu_quickstart.yaml lr=1e-3 epochs=12; "
                    "align it: engine train assets/presets/cpu_dpo.yaml (stage=dpo, starting from the SFT run).",
    )
    p.add_argument("config", nargs="?", help="YAML run config (e.g. assets/presets/cpu_quickstart.yaml). "
                   "Optional with --resume RUN_DIR, which reuses the run's config.yaml.")
    p.add_argument("overrides", nargs="*", help="key=value overrides (short names: model, data, lr, epochs, ...).")
    p.add_argument("--resume", nargs="?", const="latest", default=None, metavar="PATH|latest",
                   help="Continue from the newest checkpoint (latest), a run folder or a checkpoints/step-N folder.")
    p.add_argument("--events", default=None, metavar="PATH|-", help="Also write JSON-lines events to PATH (- = stdout).")
    p.add_argument("--no-progress", action="store_true", help="No progress bar (one is drawn on a terminal).")
    p.add_argument("--print-launch", action="store_true",
                   help="With dist.num_processes > 1 or dist.nnodes > 1: print the launch command and accelerate "
                        "config for this run (for a cluster script) and start nothing.")
    p.set_defaults(run=run)


def run(args) -> int:
    from pathlib import Path

    from engine.config import load_config
    from engine.errors import EdgetuneError

    config, overrides = args.config, list(args.overrides)
    if config and "=" in config and not config.endswith((".yaml", ".yml")):
        overrides.insert(0, config)
        config = None
    resume = args.resume
    if config is None and resume and resume != "latest":
        # `engine train --resume runs/x`: the run's own config, from its folder (or a checkpoint's parent run).
        run_dir = Path(resume)
        run_dir = run_dir.parent.parent if run_dir.parent.name == "checkpoints" else run_dir
        config = str(run_dir / "config.yaml")
        if not Path(config).is_file():
            raise EdgetuneError(f"--resume {resume}: no config.yaml in {run_dir}; pass the run's config file too.")
    if config is None and not overrides:
        raise EdgetuneError("engine train needs a config: e.g. engine train assets/presets/cpu_quickstart.yaml")
    cfg = load_config(config, overrides)
    show = not args.no_progress and sys.stderr.isatty() and args.events != "-"

    from engine.train import launch, ranks

    if args.print_launch:
        if not launch.wants_launch(cfg) and not ranks.launched():
            raise EdgetuneError("--print-launch needs dist.num_processes > 1 (or auto with several GPUs) or "
                                "dist.nnodes > 1; this run is a single process: run it without the flag.")
        return launch.print_launch(cfg, resume, args.events)
    if launch.wants_launch(cfg):
        code = launch.run_launched(cfg, resume, args.events, show)
        return code if code else _export_after_training(cfg, args.events)
    from contextlib import nullcontext

    with ranks.RankRecord(Path(cfg.output_dir)) if ranks.launched() else nullcontext():
        return _train(cfg, resume, args, show)


def _train(cfg, resume, args, show: bool) -> int:
    """Train in this process (a plain run, or one rank of a launched one)."""
    from pathlib import Path

    from engine.errors import EdgetuneError
    from engine.events import EventSink, open_events_target
    from engine.train import ranks
    from engine.train.recipes.base import RunFailed
    from engine.train.run import run_training

    main_rank = ranks.is_main()
    show = show and main_rank
    sink = EventSink(open_events_target(args.events) if main_rank else [])
    if args.events != "-" and main_rank:
        sink.listeners.append(_printer(show))
    run_dir = Path(cfg.output_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    if main_rank:
        sink.add_file(run_dir / "events.jsonl")
    try:
        result, _ = run_training(cfg, sink, resume, progress=show)
    except RunFailed as e:
        raise EdgetuneError(str(e)) from None
    finally:
        sink.close()
    if ranks.launched():
        return 0  # the launcher reports the outcome (and runs export.targets once)
    if result["status"] == "interrupted":
        print(f"stopped; resume with: engine train --resume {cfg.output_dir}", file=sys.stderr)
        return 130
    return _export_after_training(cfg, args.events)


def _export_after_training(cfg, events) -> int:
    """export.targets: run `engine export <target> <run>` for each, as a user would after training.

    The export commands read gguf_quant / onnx_precision / onnx_device from the run's config.yaml,
    so what runs here is exactly what `engine export gguf runs/x` would do later.
    """
    from engine.cli.main import main

    code = 0
    for target in cfg.export.targets:
        print(f"export.targets: engine export {target} {cfg.output_dir}", file=sys.stderr)
        rc = main(["export", target, str(cfg.output_dir)] + (["--events", events] if events == "-" else []))
        if rc:
            print(f"training completed, but `engine export {target} {cfg.output_dir}` failed (exit {rc}); "
                  f"the run folder is complete: fix the cause above and run that command again.", file=sys.stderr)
            code = code or rc
    return code


def _printer(progress_bar: bool):
    """Human-readable lines for events the progress bar does not show."""

    def show(event: dict) -> None:
        t = event["type"]
        if t == "run_started":
            print(f"run {event['run_dir']}: stage {event.get('stage', 'sft')}, {event['config']['method']} on {event['device']} ({event['dtype']}), "
                  f"backend {event['backend']} [{event['backend_reason']}], {event['trainable_params']:,} trainable of "
                  f"{event['total_params']:,} params, {event['train_records']} train / {event['eval_records']} eval "
                  f"sequences, {event['total_steps']} steps", file=sys.stderr)
            if event.get("processes", 1) > 1:
                n, accum = event["processes"], event["config"]["optim"]["grad_accum"]
                print(f"{n} processes: effective batch {event['effective_batch']} = micro-batch "
                      f"{event['effective_batch'] // (accum * n)} x grad_accum {accum} x {n} processes", file=sys.stderr)
        elif t == "step" and not progress_bar:
            extra = "".join(f"  {k} {v:.4g}" for k, v in (event.get("metrics") or {}).items())
            print(f"step {event['step']}/{event['total_steps']}  loss {event['loss']:.4f}  lr {event['lr']:.2e}  "
                  f"{event['tokens_per_s']:.0f} tok/s{extra}", file=sys.stderr)
        elif t == "completions" and not progress_bar and event["samples"]:
            first = event["samples"][-1]  # one sampled answer per logging step: what the policy is saying
            scores = "  ".join(f"{k} {v:.3g}" for k, v in first["rewards"].items())
            print(f"  sampled: {first['completion'].strip()[:160]!r}  [{scores}]", file=sys.stderr)
        elif t == "eval":
            print(f"eval @ step {event['step']}: loss {event['loss']:.4f}  ppl {event['perplexity']:.2f}", file=sys.stderr)
        elif t in ("warning", "error"):
            print(f"{t}: {event['message']} — {event['hint']}", file=sys.stderr)
        elif t == "oom":
            print(f"out of memory at step {event['step']}: retrying with batch_size={event['batch_size']} "
                  f"grad_accum={event['grad_accum']}", file=sys.stderr)
        elif t == "run_finished":
            m = event["metrics"]
            print(f"{event['status']} at step {event['step']} in {m.get('seconds')} s; "
                  f"final train loss {m.get('train_loss')}; outputs: {event['paths']}", file=sys.stderr)

    return show
