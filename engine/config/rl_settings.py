"""The `rl.*` section: the knobs of the online-RL stages (stage=grpo and stage=rloo).

Both stages sample `num_generations` answers per prompt from the policy, score them with the
rewards listed in `rl.rewards` and push the policy towards the answers that beat their group
(GRPO: reward minus the group mean, scaled by the group's spread; RLOO: reward minus the mean
of the *other* answers). A KL term (`beta`) keeps the policy near the start model. The names
follow TRL's GRPOConfig/RLOOConfig; `engine config --fields` prints these help texts.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.config.option import opt

GRPO_LOSSES = ["grpo", "dr_grpo", "dapo", "bnpo"]
SCALE_REWARDS = ["group", "batch", "none"]

REWARDS_HELP = (
    "Rewards the sampled answers are scored with, summed with weights (a list). Each entry is a string, "
    "'[WEIGHT*]SOURCE', or a mapping {reward: SOURCE, weight: W, <option>: value}. SOURCE is one of: "
    "a built-in by name: 'exact_answer' (1 if the answer equals the record's `answer` column, case and "
    "punctuation ignored), 'contains_answer' (1 if the answer contains it; option column=NAME for another "
    "column), 'length' (1 at `target` words, falling as 1/(1+|words-target|/target); options target=20, "
    "unit=words|chars), 'regex' (1 if `pattern` matches; options pattern, full=false), 'repetition' (minus the "
    "share of repeated `n`-grams, 0 for none; option n=3); a Python function 'path/to/file.py:func' "
    "(TRL's reward signature: func(prompts, completions, **columns) -> list of floats; loaded only from the "
    "path named); or a reward model 'rm:runs/<rm-run>' (a stage=rm run, scored with its own tokenizer and "
    "template). Example: rl.rewards='[length, 0.5*contains_answer]'."
)


@dataclass
class RlSettings:
    rewards: list = opt([], REWARDS_HELP)
    num_generations: int = opt(
        4, "Answers sampled per prompt (the group whose mean is the baseline). More gives a steadier advantage "
           "and costs generation time and memory linearly; optim.batch_size x optim.grad_accum (answers per "
           "optimizer step) must be a multiple of it. TRL's default is 8; 4 keeps CPU runs short.")
    max_completion_len: int = opt(
        64, "Longest sampled answer in tokens; longer ones are cut (and count as truncated). The KV cache of "
            "sampling grows with it (`engine plan` counts it).")
    temperature: float = opt(
        1.0, "Sampling temperature of the answers. Near 1 keeps the group diverse (no spread in a group = no "
             "learning signal from that prompt); lower values sharpen answers but stall learning.")
    top_p: float = opt(1.0, "Nucleus sampling: sample only from the smallest set of tokens whose probabilities "
                            "sum to top_p (1.0 = off).")
    beta: float = opt(
        0.04, "Weight of the KL penalty to the start model (with LoRA: the policy with its adapter disabled, no "
              "second model in memory). 0 drops the reference pass entirely (TRL's default; faster) but lets the "
              "policy drift freely; 0.04 is the DeepSeekMath value.")
    epsilon: float = opt(0.2, "Clipping range of the policy ratio (PPO's epsilon): an update stops pushing once "
                              "an answer's probability moved by more than this factor.")
    num_iterations: int = opt(1, "Optimizer passes over each sampled batch (PPO epochs; GRPO's mu). 1 = purely "
                                 "on-policy, the ratio clip then never binds.")
    loss_type: str = opt("dapo", "stage=grpo: how token losses are averaged, as TRL names it: 'grpo' (per answer, "
                                 "length-biased), 'dr_grpo' (by a constant), 'dapo' (by the active tokens of the "
                                 "batch; TRL's default), 'bnpo'. stage=rloo ignores it.", choices=GRPO_LOSSES)
    scale_rewards: str = opt("group", "stage=grpo: divide advantages by the group's reward std ('group', GRPO), "
                                      "the batch's ('batch') or not at all ('none', Dr. GRPO).", choices=SCALE_REWARDS)
    log_completions: int = opt(4, "Sampled answers (with their rewards) shown per logging step in the "
                                  "`completions` event and the app's Train page; 0 = none.")


def rl_problem(cfg) -> str | None:
    """What TRL would refuse (or what cannot learn) in the rl.* settings, as a message; None when fine."""
    if cfg.stage not in ("grpo", "rloo"):
        return None
    r = cfg.rl
    if r.num_generations < 2:
        return (f"rl.num_generations must be >= 2 (got {r.num_generations}): the advantage compares answers to the "
                f"same prompt. 4 is a good CPU value, 8 TRL's default.")
    if r.max_completion_len < 1:
        return f"rl.max_completion_len must be >= 1 token (got {r.max_completion_len})."
    if r.temperature <= 0:
        return (f"rl.temperature must be > 0 (got {r.temperature}): greedy answers are all alike, so no group has a "
                f"spread to learn from. Use 0.7-1.0.")
    if not 0 < r.top_p <= 1:
        return f"rl.top_p must be in (0, 1] (got {r.top_p})."
    if r.beta < 0 or r.epsilon <= 0 or r.num_iterations < 1:
        return "rl.beta must be >= 0, rl.epsilon > 0 and rl.num_iterations >= 1."
    bs = cfg.optim.batch_size
    if bs != "auto" and (bs * cfg.optim.grad_accum) % r.num_generations:
        return (f"optim.batch_size x optim.grad_accum ({bs} x {cfg.optim.grad_accum}) answers per step must be a "
                f"multiple of rl.num_generations ({r.num_generations}): each prompt's group is sampled whole. "
                f"Use batch_size={r.num_generations} (or a multiple).")
    from engine.errors import ConfigError
    from engine.rewards.spec import parse_rewards

    try:
        parse_rewards(r.rewards)
    except ConfigError as e:
        return str(e)
    return None
