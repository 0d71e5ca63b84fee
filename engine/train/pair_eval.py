"""Held-out preference pairs scored by a run: start model vs tuned, and reward models' scores.

    engine eval runs/dpo --data assets/datasets/brief_heldout.jsonl     # pairwise accuracy, start vs tuned
    engine score runs/rm --data assets/datasets/brief_heldout.jsonl    # rewards of a reward model

A policy prefers the chosen answer when its mean per-token log-probability is higher than the
rejected answer's. Mean, not sum: a sum favours whichever answer is shorter, so on data whose
chosen answers are short it would call an untrained model 'aligned'. The tuned model's implicit
reward (DPO's beta * log(pi/pi_start)) is reported too: its accuracy says whether training moved
the model towards the chosen answers, whatever their length.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional


@dataclass
class PairScores:
    """Per pair: mean and summed answer log-probs of one model."""

    chosen_mean: list
    rejected_mean: list
    chosen_sum: list
    rejected_sum: list


@dataclass
class PairResult:
    name: str
    pairs: int
    accuracy: float  # mean log-prob of chosen > rejected
    margin: float  # mean of (chosen - rejected) mean log-prob
    reward_accuracy: Optional[float] = None  # tuned only: implicit reward of chosen > rejected (vs the start model)
    reward_margin: Optional[float] = None


def _examples(cfg, data: str) -> list:
    """Held-out records read as the run read its training data (format, columns, system prompt)."""
    from engine.data.dataset import load_examples

    return load_examples(data, cfg.data.format, cfg.data.columns, cfg.data.system_prompt).examples


def encode_pairs(examples: list, tokenizer, max_len: int, max_prompt_len="auto") -> list:
    """PairEncoded for every preference example that keeps an answer token within max_len."""
    from engine.data.pairs import PairEncoder

    enc = PairEncoder(tokenizer, max_len, max_prompt_len)
    return [p for p in (enc.pair(ex) for ex in examples if ex.kind == "preference") if p is not None]


def _answer_logps(model, sequences: list[tuple[list, list]], batch_size: int = 8) -> tuple[list, list]:
    """(mean, sum) log-prob of each answer given its prompt, for (prompt_ids, answer_ids) sequences."""
    import torch

    means, sums = [], []
    device = next(model.parameters()).device
    model.eval()
    for i in range(0, len(sequences), batch_size):
        chunk = sequences[i:i + batch_size]
        width = max(len(p) + len(a) for p, a in chunk)
        ids = torch.zeros(len(chunk), width, dtype=torch.long)
        mask = torch.zeros(len(chunk), width, dtype=torch.long)
        labels = torch.full((len(chunk), width), -100, dtype=torch.long)
        for j, (p, a) in enumerate(chunk):
            ids[j, :len(p) + len(a)] = torch.tensor(p + a)
            mask[j, :len(p) + len(a)] = 1
            labels[j, len(p):len(p) + len(a)] = torch.tensor(a)
        with torch.no_grad():
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float().cpu()
        logp = torch.log_softmax(logits[:, :-1], dim=-1)
        target = labels[:, 1:]
        keep = target != -100
        picked = logp.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1) * keep
        total = picked.sum(-1)
        count = keep.sum(-1).clamp(min=1)
        sums += total.tolist()
        means += (total / count).tolist()
    return means, sums


def score_pairs(model, pairs: list) -> PairScores:
    """Answer log-probs of chosen and rejected for every pair under `model`."""
    cm, cs = _answer_logps(model, [(p.prompt_ids, p.chosen_ids) for p in pairs])
    rm, rs = _answer_logps(model, [(p.prompt_ids, p.rejected_ids) for p in pairs])
    return PairScores(cm, rm, cs, rs)


def _summary(name: str, s: PairScores) -> PairResult:
    n = len(s.chosen_mean)
    diffs = [c - r for c, r in zip(s.chosen_mean, s.rejected_mean)]
    return PairResult(name, n, sum(d > 0 for d in diffs) / max(n, 1), sum(diffs) / max(n, 1))


def preference_eval(run: str | Path, data: str) -> list[PairResult]:
    """Pairwise accuracy on held-out pairs: the run's start model vs the tuned model (with implicit rewards)."""
    from engine.config import load_config
    from engine.data.dataset import load_examples
    from engine.train.run_models import load_policy

    cfg = load_config(Path(run) / "config.yaml")
    start, tuned, tokenizer = load_policy(run)
    pairs = encode_pairs(_examples(cfg, data), tokenizer, cfg.sequence.max_len, cfg.sequence.max_prompt_len)
    if not pairs:
        from engine.errors import DataError

        raise DataError(f"{data} holds no preference pairs to score (prompt/chosen/rejected records).")
    with start() as model:
        before = score_pairs(model, pairs)
    with tuned() as model:
        after = score_pairs(model, pairs)
    beta = getattr(getattr(cfg, cfg.stage, None), "beta", 1.0)
    rewards = [beta * ((ac - bc) - (ar - br)) for ac, bc, ar, br in
               zip(after.chosen_sum, before.chosen_sum, after.rejected_sum, before.rejected_sum)]
    result = _summary("tuned", after)
    result.reward_accuracy = sum(r > 0 for r in rewards) / len(rewards)
    result.reward_margin = sum(rewards) / len(rewards)
    return [_summary("start", before), result]


@dataclass
class RewardResult:
    pairs: int
    accuracy: float  # reward(chosen) > reward(rejected)
    margin: float
    chosen: list
    rejected: list


def reward_scores(run: str | Path, data: str, batch_size: int = 8) -> RewardResult:
    """A reward-model run's scores of every held-out pair's chosen and rejected answers."""
    import torch

    from engine.config import load_config
    from engine.data.dataset import load_examples
    from engine.train.run_models import load_reward_model

    cfg = load_config(Path(run) / "config.yaml")
    model, tokenizer = load_reward_model(run)
    pairs = encode_pairs(_examples(cfg, data), tokenizer, cfg.sequence.max_len, cfg.sequence.max_prompt_len)
    if not pairs:
        from engine.errors import DataError

        raise DataError(f"{data} holds no preference pairs to score (prompt/chosen/rejected records).")

    def scores(seqs: list) -> list:
        out = []
        for i in range(0, len(seqs), batch_size):
            chunk = seqs[i:i + batch_size]
            width = max(len(s) for s in chunk)
            ids = torch.full((len(chunk), width), tokenizer.pad_token_id, dtype=torch.long)
            mask = torch.zeros(len(chunk), width, dtype=torch.long)
            for j, s in enumerate(chunk):
                ids[j, :len(s)] = torch.tensor(s)
                mask[j, :len(s)] = 1
            device = next(model.parameters()).device
            with torch.no_grad():
                out += model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits[:, 0].float().tolist()
        return out

    chosen = scores([p.prompt_ids + p.chosen_ids for p in pairs])
    rejected = scores([p.prompt_ids + p.rejected_ids for p in pairs])
    diffs = [c - r for c, r in zip(chosen, rejected)]
    return RewardResult(len(pairs), sum(d > 0 for d in diffs) / max(len(diffs), 1), sum(diffs) / max(len(diffs), 1),
                        chosen, rejected)
