"""`engine eval RUN_OR_MODEL --data FILE`: loss and perplexity, base vs tuned."""

from __future__ import annotations

import json


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="Loss and perplexity on a dataset (preference runs: pairwise accuracy; reward "
                                    "models: reward accuracy); a run folder shows base vs tuned side by side.")
    p.add_argument("spec", help="Run folder, or a model (bundled name, folder, .gguf, hub id).")
    p.add_argument("--data", required=True, help="Data file (any format engine train accepts).")
    p.add_argument("--max-len", type=int, default=1024, help="Sequence length for plain models (runs use their own).")
    p.add_argument("--answers", action="store_true",
                   help="Also ask every question (greedy) and score the answers by the record's `expect` field (or "
                        "its output: the fact must appear) or `max_words` (a length target): a held-out quiz, "
                        "base vs tuned. Works on preference files too (their `prompt`).")
    p.add_argument("--max-tokens", type=int, default=48, help="Longest greedy answer with --answers.")
    p.add_argument("--reward", default=None, metavar="REWARDS",
                   help="With --answers: also score the greedy replies with these rewards (rl.rewards syntax, e.g. "
                        "rm:runs/rm or '[length, rm:runs/rm]'), mean per model, base vs tuned. A grpo/rloo run is "
                        "scored with its own rl.rewards without this option.")
    p.add_argument("--json", action="store_true", help="Print JSON.")
    p.set_defaults(run=run)


def run(args) -> int:
    from engine.data.dataset import load_examples
    from engine.runs import is_run_dir
    from engine.train.evaluate import evaluate, quiz
    from engine.models.checks import run_stage

    args.answers = args.answers or bool(args.reward)  # rewards score the greedy replies
    stage = run_stage(args.spec) if is_run_dir(args.spec) else None
    kind = load_examples(args.data).kind
    out: dict = {}
    if stage == "rm":
        from engine.train.pair_eval import reward_scores

        out["reward"] = reward_scores(args.spec, args.data).__dict__
    elif stage is not None and kind == "preference":
        from engine.train.pair_eval import preference_eval

        out["pairs"] = [r.__dict__ for r in preference_eval(args.spec, args.data)]
    else:
        out["loss"] = [r.__dict__ for r in evaluate(args.spec, args.data, args.max_len)]
    items = quiz(args.spec, args.data, args.max_tokens) if args.answers and stage != "rm" else []
    out["quiz"] = [i.__dict__ for i in items]
    if items and (args.reward or stage in ("grpo", "rloo")):
        from engine.train.reward_eval import reply_rewards, rewards_config

        out["reply_rewards"] = reply_rewards(items, args.data, rewards_config(args.spec, args.reward)).__dict__
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    _print_quiz(items)
    if "reply_rewards" in out:
        r = out["reply_rewards"]
        print(f"reward of the greedy replies ({r['rewards']}, mean of {r['replies']}): "
              + "  ".join(f"{name} {value:.3f}" for name, value in r["mean"].items()))
    if "reward" in out:
        r = out["reward"]
        print(f"reward model: {r['accuracy']:.0%} of {r['pairs']} held-out pairs ranked chosen > rejected, "
              f"mean margin {r['margin']:.3f}")
    if "pairs" in out:
        print(f"{'model':<10}{'pairs':>7}{'accuracy':>10}{'margin':>10}{'reward acc':>12}{'reward margin':>15}")
        for r in out["pairs"]:
            ra = "" if r["reward_accuracy"] is None else f"{r['reward_accuracy']:.0%}"
            rm = "" if r["reward_margin"] is None else f"{r['reward_margin']:.3f}"
            print(f"{r['name']:<10}{r['pairs']:>7}{r['accuracy']:>10.0%}{r['margin']:>10.3f}{ra:>12}{rm:>15}")
        print("accuracy: pairs whose chosen answer has the higher mean log-prob per token; reward: the tuned "
              "model's implicit reward beta*log(p_tuned/p_start), chosen vs rejected")
    if "loss" in out:
        print(f"{'model':<24}{'loss':>10}{'perplexity':>14}{'tokens':>10}")
        for r in out["loss"]:
            print(f"{r['name']:<24}{r['loss']:>10.4f}{r['perplexity']:>14.2f}{r['tokens']:>10}")
    return 0


def _print_quiz(items) -> None:
    mark = {True: "✓", False: "✗", None: "·"}
    for i in items:
        print(f"Q: {i.question}" + (f"   (expect: {i.expect})" if i.expect else ""))
        for name, answer in i.answers.items():
            print(f"  {mark[i.correct[name]]} {name:<6} {answer.strip()[:110]}")
    if items and any(v is not None for i in items for v in i.correct.values()):
        for name in items[0].answers:
            scored = [i for i in items if i.correct[name] is not None]
            print(f"{name}: {sum(i.correct[name] for i in scored)}/{len(scored)} correct")
    if items:
        print()
