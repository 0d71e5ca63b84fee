"""`engine eval RUN_OR_MODEL --data FILE`: loss and perplexity, base vs tuned."""

from __future__ import annotations

import json


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="Loss and perplexity on a dataset; a run folder shows base vs tuned side by side.")
    p.add_argument("spec", help="Run folder, or a model (bundled name, folder, .gguf, hub id).")
    p.add_argument("--data", required=True, help="Data file (any format engine train accepts).")
    p.add_argument("--max-len", type=int, default=1024, help="Sequence length for plain models (runs use their own).")
    p.add_argument("--json", action="store_true", help="Print JSON.")
    p.set_defaults(run=run)


def run(args) -> int:
    from engine.train.evaluate import evaluate

    results = evaluate(args.spec, args.data, args.max_len)
    if args.json:
        print(json.dumps([r.__dict__ for r in results], indent=2))
        return 0
    print(f"{'model':<24}{'loss':>10}{'perplexity':>14}{'tokens':>10}")
    for r in results:
        print(f"{r.name:<24}{r.loss:>10.4f}{r.perplexity:>14.2f}{r.tokens:>10}")
    return 0
