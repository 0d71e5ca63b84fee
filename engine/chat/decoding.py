"""Sampling and incremental detokenisation shared by the backends that decode themselves."""

from __future__ import annotations

from typing import Callable


def sample_next(logits, seen: list[int], params, generator) -> int:
    """Pick the next token from 1-D logits: repeat penalty, then greedy (temperature 0) or top-k/top-p sampling."""
    import torch

    logits = logits.clone()
    if params.repeat_penalty and params.repeat_penalty != 1.0 and seen:
        idx = torch.tensor(sorted(set(seen[-64:])))
        vals = logits[idx]
        logits[idx] = torch.where(vals > 0, vals / params.repeat_penalty, vals * params.repeat_penalty)
    if params.temperature <= 0:
        return int(torch.argmax(logits))
    logits = logits / params.temperature
    if params.top_k and params.top_k > 0:
        kth = torch.topk(logits, min(params.top_k, logits.numel())).values[-1]
        logits[logits < kth] = float("-inf")
    probs = torch.softmax(logits, dim=-1)
    if 0 < params.top_p < 1:
        sorted_p, order = torch.sort(probs, descending=True)
        drop = torch.cumsum(sorted_p, 0) - sorted_p > params.top_p
        sorted_p[drop] = 0
        probs = torch.zeros_like(probs).scatter(0, order, sorted_p)
        probs = probs / probs.sum()
    return int(torch.multinomial(probs, 1, generator=generator))


class IncrementalText:
    """Decode a growing token list and hand out only the new, complete text."""

    def __init__(self, decode: Callable[[list[int]], str]):
        self.decode = decode
        self.tokens: list[int] = []
        self.emitted = ""

    def push(self, token: int) -> str:
        self.tokens.append(token)
        text = self.decode(self.tokens)
        if text.endswith("\ufffd"):  # an unfinished multi-byte character: wait for the next token
            return ""
        new = text[len(self.emitted):]
        self.emitted = text
        return new
