"""`engine compare CONFIG --methods lora,dora,ia3,...`: train each method on the same model, data, budget and
seed, one after another, and write a table and plots (engine/compare/)."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser(
        "compare", help="Train several fine-tuning methods on your data (same model, data, budget, seed) and compare "
                        "trainable parameters, peak memory, speed, losses and held-out answers.",
        description="Example: engine compare assets/presets/cpu_quickstart.yaml --methods lora,dora,ia3,prompt "
                    "--heldout assets/datasets/quillon_heldout.jsonl --answers. A comparison is resumable: run the "
                    "same command again and finished methods are kept, an interrupted one resumes.",
    )
    p.add_argument("config", help="YAML run config: the model, data, budget (epochs/max_steps) and seed all methods share.")
    p.add_argument("overrides", nargs="*", help="key=value overrides, as for engine train.")
    p.add_argument("--methods", default="lora,qlora,dora,ia3,prompt,prefix,adapter_serial",
                   help="Comma-separated methods, or 'all' (engine config --fields lists them under `method`).")
    p.add_argument("--out", default=None, help="Comparison folder (default: <output_dir>-compare).")
    p.add_argument("--lr-policy", choices=["recommended", "same"], default="recommended",
                   help="recommended: the config's lr is LoRA's and each method gets it times its factor (soft prompts "
                        "x10-30, (IA)^3 x5, full x0.05, ...); same: every method trains at the config's lr.")
    p.add_argument("--heldout", default=None, help="Held-out data file: its loss (base vs each method) goes in the table.")
    p.add_argument("--answers", action="store_true",
                   help="Also ask the held-out questions (greedy) and count answers containing the record's `expect` "
                        "(or output), as engine eval --answers does.")
    p.set_defaults(run=run)


def run(args) -> int:
    import json
    from pathlib import Path

    from engine.compare.report import write_html, write_png
    from engine.compare.runner import run_comparison
    from engine.compare.table import markdown, text_table
    from engine.config import load_config
    from engine.errors import ConfigError
    from engine.train.methods import get_method, method_names

    cfg = load_config(args.config, args.overrides)
    methods = method_names() if args.methods.strip() == "all" else [m.strip() for m in args.methods.split(",") if m.strip()]
    for m in methods:
        get_method(m)  # an unknown name fails here, listing the known ones
    if len(set(methods)) != len(methods):
        raise ConfigError(f"--methods names a method twice: {args.methods}")
    if args.answers and not args.heldout:
        raise ConfigError("--answers asks the held-out questions: give them with --heldout FILE.")
    if args.heldout and not Path(args.heldout).is_file():
        raise ConfigError(f"--heldout {args.heldout}: no such file.")
    out = Path(args.out) if args.out else Path(f"{cfg.output_dir.rstrip('/')}-compare")
    rows = run_comparison(cfg, methods, out, args.lr_policy, args.heldout, args.answers, say=lambda s: print(s, flush=True))


    meta = json.loads((out / "compare.json").read_text())["meta"]
    (out / "compare.md").write_text(markdown(rows, meta), encoding="utf-8")
    png = write_png(rows, out / "compare.png")
    write_html(rows, meta, out / "compare.html", png)
    print()
    print(text_table(rows))
    print(f"\nwrote {out / 'compare.md'}, {out / 'compare.html'}" + (f", {png}" if png else " (pip install matplotlib for compare.png)"))
    failed = [r.method for r in rows if r.status != "completed"]
    if failed:
        print(f"not completed: {', '.join(failed)} (see the table; the others are measured)")
    return 0
