"""Preference pairs and rated answers as token ids: prompt ids, then each answer's ids.

    enc = PairEncoder(tokenizer, max_len=256, max_prompt_len=128)
    pair = enc.pair(example)          # PairEncoded(prompt_ids, chosen_ids, rejected_ids) or None
    rated = enc.rated(example)        # RatedEncoded(prompt_ids, completion_ids, label) or None

The conversation is rendered with the model's chat template once per answer (prompt turns +
the answer as the assistant turn), tokenised with offsets, and split where the answer's
character span starts (engine/data/render.py finds the span, as for SFT). So an answer's ids
are exactly what SFT would train on: its text and its end-of-turn token, never the template's
trailing glue. Long prompts lose their start first (the question at the end is kept); then
answers are cut to fit max_len (with max_prompt_len=auto the prompt gives way first, down to half of
max_len, so answers stay whole where they can); a pair with no answer token left is dropped (None).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from engine.data.formats import Example
from engine.data.render import Renderer, require_chat_template


@dataclass
class PairEncoded:
    prompt_ids: list
    chosen_ids: list
    rejected_ids: list
    truncated: bool = False


@dataclass
class RatedEncoded:
    prompt_ids: list
    completion_ids: list
    label: bool
    truncated: bool = False


def resolve_max_prompt_len(max_prompt_len, max_len: int) -> int:
    """sequence.max_prompt_len as a hard cap: 'auto' = max_len - 1 here, and PairEncoder then cuts the prompt
    only as far as the longest answer needs, never below half of max_len."""
    n = max_len - 1 if max_prompt_len in (None, "auto") else int(max_prompt_len)
    return max(1, min(n, max_len - 1))


class PairEncoder:
    """Turns preference and KTO `Example`s into prompt/answer token ids for one tokenizer."""

    def __init__(self, tokenizer, max_len: int, max_prompt_len="auto"):
        require_chat_template(tokenizer)
        self.tok = tokenizer
        self.renderer = Renderer(tokenizer, max_len)
        self.max_len = max_len
        self.auto = max_prompt_len in (None, "auto")
        self.max_prompt_len = resolve_max_prompt_len(max_prompt_len, max_len)

    def split(self, messages: list, answer: str) -> tuple[list, list]:
        """(prompt ids, answer ids) of `messages` answered by `answer`, untruncated."""
        text, spans = self.renderer.chat_spans(messages + [{"role": "assistant", "content": answer}])
        start, end = spans[-1]
        enc = self.tok(text, add_special_tokens=False, return_offsets_mapping=True)
        prompt, answer_ids = [], []
        for tid, (a, _) in zip(enc["input_ids"], enc["offset_mapping"]):
            if a < start:
                prompt.append(tid)
            elif a < end:
                answer_ids.append(tid)
        bos = self.tok.bos_token_id
        if bos is not None and getattr(self.tok, "add_bos_token", False) and (not prompt or prompt[0] != bos):
            prompt = [bos] + prompt
        return prompt, answer_ids

    def _fit(self, prompt: list, answers: list[list]) -> tuple[list, list[list], bool]:
        truncated = False
        limit = self.max_prompt_len
        if self.auto:  # keep whole answers where the prompt can give way, but never below half of max_len
            limit = max(self.max_len - max(len(a) for a in answers), self.max_len // 2)
        if len(prompt) > limit:
            bos = self.tok.bos_token_id
            keep = prompt[:1] if bos is not None and prompt[0] == bos else []  # a model's BOS stays first
            prompt, truncated = keep + prompt[len(prompt) - limit + len(keep):], True
        budget = self.max_len - len(prompt)
        cut = [a[:budget] for a in answers]
        truncated = truncated or any(len(c) < len(a) for c, a in zip(cut, answers))
        return prompt, cut, truncated

    def pair(self, ex: Example) -> Optional[PairEncoded]:
        """A preference example as ids; None when an answer has no token left after truncation."""
        p1, chosen = self.split(ex.messages, ex.chosen)
        p2, rejected = self.split(ex.messages, ex.rejected)
        if p1 != p2:  # tokens merged across the prompt/answer boundary: keep the shared part as the prompt
            n = _common_prefix(p1, p2)
            chosen, rejected, p1 = p1[n:] + chosen, p2[n:] + rejected, p1[:n]
        prompt, (chosen, rejected), truncated = self._fit(p1, [chosen, rejected])
        if not chosen or not rejected:
            return None
        return PairEncoded(prompt, chosen, rejected, truncated)

    def rated(self, ex: Example) -> Optional[RatedEncoded]:
        """A KTO example (one answer with its thumbs up/down) as ids; None when no answer token is left."""
        prompt, completion = self.split(ex.messages, ex.completion)
        prompt, (completion,), truncated = self._fit(prompt, [completion])
        if not completion:
            return None
        return RatedEncoded(prompt, completion, bool(ex.label), truncated)


def unpair(ex: Example) -> list[Example]:
    """A preference pair as two KTO examples: the chosen answer thumbs-up, the rejected one thumbs-down."""
    if ex.kind == "kto":
        return [ex]
    return [Example("kto", messages=ex.messages, completion=ex.chosen, label=True),
            Example("kto", messages=ex.messages, completion=ex.rejected, label=False)]


def _common_prefix(a: list, b: list) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n
