"""What online RL (stage=grpo, stage=rloo) adds to a run's memory, for `engine plan` and 'auto'.

    fields = rl_fields(cfg)          # RunSpec overrides: sampled answers at once, reference, reward models

Per optimizer step the trainer first *samples*: `rl.num_generations` answers per prompt for a
generation batch of batch_size x grad_accum answers, each up to max_len tokens (prompt + answer),
which keeps a KV cache of 2 (K and V) x layers x kv_heads x head_dim values per token, plus one
step's fp32 logits over the vocabulary. Then it *learns* on micro-batches of batch_size answers,
as SFT does (the activations and loss terms of estimate.py). The KL reference is the policy with
its adapter disabled (LoRA family) or a frozen copy (full/freeze); every `rm:` reward keeps a
reward model in fp32 beside the policy. No torch here.
"""

from __future__ import annotations

from typing import Optional

from engine.plan.estimate import GB, Part, _b, term

RL_STAGES = ("grpo", "rloo")


def rl_reference(cfg) -> str:
    """How the KL reference is had: none when rl.beta is 0, else adapter-off (peft) or a frozen copy."""
    from engine.train.methods import get_method

    if cfg.rl.beta == 0:
        return "none"
    return "adapter-off" if get_method(cfg.method).saved_as == "peft" else "copy"


def reward_model_params(cfg) -> int:
    """Parameters of every reward-model run named in rl.rewards (0 when none, or when one cannot be read)."""
    from engine.errors import EdgetuneError
    from engine.plan.model_lookup import find_shape

    total = 0
    for entry in cfg.rl.rewards:
        source = entry.get("reward", "") if isinstance(entry, dict) else str(entry).partition("*")[2] or str(entry)
        source = source.strip()
        if source.startswith("rm:"):
            try:
                total += find_shape(source[3:].strip()).total_params
            except EdgetuneError:
                continue  # the config check names a missing rm run; the plan leaves it out
    return total


def rl_fields(cfg, batch_size: int) -> dict:
    """RunSpec overrides for an RL stage (empty for any other stage)."""
    if getattr(cfg, "stage", "sft") not in RL_STAGES:
        return {}
    return {"generations": int(batch_size) * int(cfg.optim.grad_accum), "reference": rl_reference(cfg),
            "reward_params": reward_model_params(cfg)}


@term
def generation_cache(spec) -> Optional[Part]:
    """The KV cache and one step's logits while the generation batch is sampled (freed before learning, but
    the policy's weights and optimizer state stay, so it counts toward the same peak)."""
    if not spec.generations:
        return None
    s = spec.shape
    tokens = spec.generations * spec.max_len
    kv = 2 * s.num_layers * s.num_kv_heads * s.head_dim * spec.compute_bytes * tokens
    logits = spec.generations * s.vocab_size * 4
    return Part("sampling KV cache", (kv + logits) / GB,
                f"{spec.generations} answers sampled at once x {spec.max_len} tokens (prompt + answer), K and V of "
                f"{s.num_layers} layers")


@term
def reward_models(spec) -> Optional[Part]:
    """Reward-model runs used as rewards: their weights in fp32 beside the policy."""
    if not spec.reward_params:
        return None
    return Part("reward model", spec.reward_params * 4 / GB, f"rm reward ({_b(spec.reward_params)} params, fp32)")
