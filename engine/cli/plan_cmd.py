"""`engine plan CONFIG [key=value ...] [--gpu NAME | --vram GB] [--json]`: will it fit?

    engine plan assets/presets/gpu_8b_qlora.yaml --gpu "RTX 4060"
    engine plan assets/presets/cpu_quickstart.yaml batch_size=16 --gpu "CPU 8GB" --json
    engine plan model=Qwen/Qwen2.5-7B-Instruct method=lora max_len=2048 --vram 24

Prints the peak memory broken into parts, a verdict, the largest micro-batch and max_len
that fit, what to change when it does not fit, and ends with `total: X.X GB`. Without
--gpu/--vram it plans for this machine (nvidia-smi's GPU, else the available RAM).
Imports no torch: it runs in well under a second on any machine.
"""

from __future__ import annotations

import json


def add_parser(sub) -> None:
    p = sub.add_parser(
        "plan", help="Estimate peak training memory for a config: will it fit on a GPU (or in RAM)?",
        description="Estimate the peak memory of a training run without loading anything, say whether it fits "
                    "and what to change. 'auto' batch size and gradient checkpointing are resolved as "
                    "`engine train` would.",
    )
    p.add_argument("file", nargs="?", help="Run config YAML (optional; key=value overrides alone work too).")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. max_len=2048 batch_size=auto.")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--gpu", metavar="NAME",
                       help="Plan for this device: a GPU name ('RTX 4060', 'RTX 4060 Ti 16GB', 'RX 7900 XTX'), "
                            "'Apple M2 16GB' or 'CPU 32GB'. Default: this machine.")
    where.add_argument("--vram", type=float, metavar="GB", help="Plan for a CUDA GPU with this much memory (GB).")
    p.add_argument("--gpus", type=int, default=None, metavar="N",
                   help="Also plan memory per GPU for N GPUs of that kind, for each strategy (DDP replicates; "
                        "ZeRO-2 shards gradients and optimizer state; FSDP / ZeRO-3 shard the weights too; offload "
                        "moves them to CPU RAM). Default: dist.num_processes when > 1.")
    p.add_argument("--list-gpus", action="store_true", help="List the GPUs the planner knows, with their memory.")
    p.add_argument("--json", action="store_true", help="Print the plan as JSON (the same data as the text).")
    p.set_defaults(run=run)


def run(args) -> int:
    from engine.config import load_config
    from engine.plan import build_plan, parse_target
    from engine.plan.gpu_catalog import Target, known_gpus
    from engine.plan.machine import detect_target
    from engine.plan.report import format_plan

    if args.list_gpus:
        print("\n".join(known_gpus()))
        return 0
    file, overrides = args.file, list(args.overrides)
    if file and "=" in file and not file.endswith((".yaml", ".yml")):
        overrides.insert(0, file)
        file = None
    cfg = load_config(file, overrides)
    if args.gpu:
        target = parse_target(args.gpu)
    elif args.vram is not None:
        target = Target("cuda", f"GPU with {args.vram:g} GB", args.vram)
    else:
        target = detect_target()
    plan = build_plan(cfg, target)
    gpus = args.gpus or (cfg.dist.num_processes if isinstance(cfg.dist.num_processes, int) else 1)
    rows = _device_plans(cfg, plan, gpus) if gpus > 1 else []
    if args.json:
        print(json.dumps(dict(plan.to_dict(), **({"per_gpu": [r.to_dict() for r in rows]} if rows else {})), indent=2))
    else:
        print(format_plan(plan))
        if rows:
            from engine.plan.sharding import format_device_plans

            print(format_device_plans(rows, plan.memory_gb, plan.target))
    return 0


def _device_plans(cfg, plan, gpus: int):
    from engine.plan.model_lookup import find_shape
    from engine.plan.sharding import device_plans

    shape = find_shape(cfg.model.name_or_path, cfg.model.trust_remote_code)
    return device_plans(plan, shape.num_layers, gpus, cfg.dist)
