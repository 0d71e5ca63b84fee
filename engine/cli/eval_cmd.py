"""`engine eval RUN_OR_MODEL --data FILE`: loss and perplexity, base vs tuned."""

from __future__ import annotations

import json


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="Loss and perplexity on a dataset; a run folder shows base vs tuned side by side.")
    p.add_argument("spec", help="Run folder, or a model (bundled name, folder, .gguf, hub id).")
    p.add_argument("--data", required=True, help="Data file (any format engine train accepts).")
    p.add_argument("--max-len", type=int, default=1024, help="Sequence length for plain models (runs use their own).")
    p.add_argument("--answers", action="store_true",
                   help="Also ask every question (greedy) and score answers that contain the record's `expect` "
                        "field (or its output): a held-out quiz, base vs tuned.")
    p.add_argument("--json", action="store_true", help="Print JSON.")
    p.set_defaults(run=run)


def run(args) -> int:
    from engine.models.checks import check_run_stage
    from engine.runs import is_run_dir
    from engine.train.evaluate import evaluate, quiz

    if is_run_dir(args.spec):
        check_run_stage(args.spec, "causal-lm")  # loss/perplexity are a language model's; an rm run scores answers

    results = evaluate(args.spec, args.data, args.max_len)
    items = quiz(args.spec, args.data) if args.answers else []
    if args.json:
        print(json.dumps({"loss": [r.__dict__ for r in results], "quiz": [i.__dict__ for i in items]}, indent=2))
        return 0
    for i in items:
        print(f"Q: {i.question}   (expect: {i.expect})")
        for name, answer in i.answers.items():
            print(f"  {'✓' if i.correct[name] else '✗'} {name:<6} {answer.strip()[:110]}")
    if items:
        for name in items[0].answers:
            print(f"{name}: {sum(i.correct[name] for i in items)}/{len(items)} correct")
        print()
    print(f"{'model':<24}{'loss':>10}{'perplexity':>14}{'tokens':>10}")
    for r in results:
        print(f"{r.name:<24}{r.loss:>10.4f}{r.perplexity:>14.2f}{r.tokens:>10}")
    return 0
