"""Rewards of greedy replies to held-out prompts, base vs tuned: what an RL run changed, in its own reward.

    engine eval runs/grpo --data assets/datasets/brief_heldout.jsonl --answers              # the run's rl.rewards
    engine eval runs/grpo --data held_out.jsonl --answers --reward rm:runs/rm             # any reward, e.g. an RM

The replies are `engine eval --answers`' greedy ones (engine/train/evaluate.quiz); each model's
replies are scored by the rewards as a training step would score sampled answers (the same
functions, weights and dataset columns), and the mean weighted reward per model is reported.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class ReplyRewards:
    rewards: str  # the rl.rewards value used
    mean: dict  # model name -> mean weighted reward of its replies
    per_reward: dict  # model name -> {reward name: mean}
    replies: int


def rewards_config(spec: str, rewards: str | None):
    """A config carrying the rewards to score with: `rewards` if given, else the RL run's own rl.rewards."""
    from engine.config import load_config
    from engine.errors import ConfigError
    from engine.models.checks import run_stage
    from engine.runs import is_run_dir

    if rewards:
        return load_config(None, ["stage=grpo", f"rl.rewards={rewards}"])
    if is_run_dir(spec) and run_stage(spec) in ("grpo", "rloo"):
        return load_config(Path(spec) / "config.yaml")
    raise ConfigError(f"--reward needs a value for '{spec}' (only grpo/rloo runs carry their own rewards): e.g. "
                      f"--reward rm:runs/rm, --reward length, or --reward '[length, 0.5*my_rewards.py:fn]'.")


def reply_rewards(items: list, data: str, cfg) -> ReplyRewards:
    """Score every model's greedy replies in `items` (from quiz) with cfg's rewards, using `data`'s columns."""
    from engine.data.readers import read_records
    from engine.rewards import build_rewards, parse_rewards

    funcs, weights = build_rewards(cfg)
    names = [s.name for s in parse_rewards(cfg.rl.rewards)]
    records = [rec for _, rec in read_records(data)]
    columns = set.intersection(*(set(r) for r in records)) - {"prompt", "chosen", "rejected", "instruction"}
    extra = {c: [r[c] for r in records] for c in sorted(columns)}
    prompts = [[{"role": "user", "content": item.question}] for item in items]
    mean, per = {}, {}
    for model in (items[0].answers if items else {}):
        completions = [[{"role": "assistant", "content": item.answers[model]}] for item in items]
        scores = {n: f(prompts=prompts, completions=completions, **extra) for n, f in zip(names, funcs)}
        per[model] = {n: sum(v) / len(v) for n, v in scores.items()}
        mean[model] = sum(w * per[model][n] for n, w in zip(names, weights))
    return ReplyRewards(str(cfg.rl.rewards), mean, per, len(items))
