"""Rewards for the online-RL stages (stage=grpo, stage=rloo): what `rl.rewards` names, made callable.

    specs = parse_rewards(cfg.rl.rewards)          # RewardSpec(kind, target, weight, options), torch-free
    funcs, weights = build_rewards(cfg)            # TRL reward functions, each guarded, and their weights

Files, read top to bottom:
  spec.py          the `rl.rewards` grammar: '[W*]SOURCE' strings or {reward: SOURCE, weight: W, ...} mappings
  builtin.py       exact_answer, contains_answer, length, regex, repetition (a registry)
  python_file.py   a user's `file.py:func`, loaded only from the path named
  reward_model.py  a stage=rm run scoring answers with its own tokenizer and template
  guard.py         every reward wrapped: a raise or a wrong-length return becomes a RewardFailed naming it
"""

from engine.rewards.spec import RewardSpec, parse_rewards


def build_rewards(cfg) -> tuple[list, list]:
    """(reward functions, weights) for `cfg.rl.rewards`: each function follows TRL's signature and is guarded."""
    from engine.rewards.guard import guarded
    from engine.rewards.spec import SOURCES

    funcs, weights = [], []
    for spec in parse_rewards(cfg.rl.rewards):
        funcs.append(guarded(SOURCES[spec.kind](spec, cfg), spec))
        weights.append(spec.weight)
    return funcs, weights


__all__ = ["RewardSpec", "build_rewards", "parse_rewards"]
