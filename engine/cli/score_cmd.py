"""`engine score RM_RUN --data FILE`: a reward model's scores of preference pairs (or of single answers)."""

from __future__ import annotations

import json


def add_parser(sub) -> None:
    p = sub.add_parser("score", help="Score answers with a reward model (a stage=rm run): rewards and pair accuracy.",
                       description="Score every pair of a preference file with a reward-model run. "
                                   "Example: engine score runs/rm --data assets/datasets/brief_heldout.jsonl")
    p.add_argument("run_dir", metavar="RUN", help="A run folder trained with stage=rm.")
    p.add_argument("--data", required=True, help="Preference pairs (prompt/chosen/rejected, any layout engine train reads).")
    p.add_argument("--json", action="store_true", help="Print JSON (every reward).")
    p.set_defaults(run=run)


def run(args) -> int:
    from engine.train.pair_eval import reward_scores

    r = reward_scores(args.run_dir, args.data)
    if args.json:
        print(json.dumps(r.__dict__, indent=2))
        return 0
    print(f"{'pair':>5}{'chosen':>10}{'rejected':>10}{'margin':>10}")
    for i, (c, rj) in enumerate(zip(r.chosen, r.rejected), 1):
        print(f"{i:>5}{c:>10.3f}{rj:>10.3f}{c - rj:>10.3f}{'' if c > rj else '   <- ranked wrong'}")
    print(f"reward accuracy {r.accuracy:.0%} ({round(r.accuracy * r.pairs)}/{r.pairs} pairs ranked chosen > rejected), "
          f"mean margin {r.margin:.3f}")
    return 0
