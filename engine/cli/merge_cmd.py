"""`engine merge RUN_DIR`: fold the adapter into a 16/32-bit base, verified."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("merge", help="Merge a run's LoRA adapter into the base model (verified) -> RUN/merged.")
    p.add_argument("run_dir", help="Run folder written by engine train.")
    p.add_argument("--out", default=None, help="Output folder (default RUN_DIR/merged).")
    p.add_argument("--dtype", default="auto", choices=["auto", "bf16", "fp16", "fp32"],
                   help="Saved dtype; auto = the base model's own dtype. Verification always runs in fp32.")
    p.set_defaults(run=run)


def run(args) -> int:
    from engine.models.checks import check_run_stage
    from engine.runs import is_run_dir
    from engine.train.merge import merge_adapter

    if is_run_dir(args.run_dir):
        check_run_stage(args.run_dir, "causal-lm")  # a reward model's score head does not merge into a chat model

    report = merge_adapter(args.run_dir, args.out, args.dtype)
    print(f"merged -> {report.out}  (max |merged - base+adapter| = {report.max_abs_diff:.2e}, "
          f"max |merged - base| = {report.base_diff:.2e})")
    return 0
