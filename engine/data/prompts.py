"""Prompt-only data for online RL (stage=grpo, stage=rloo): the prompt as the policy will see it.

    ids = prompt_ids(tokenizer, example.messages)      # chat template + the assistant turn's opening
    rows = prompt_rows(examples)                       # [{"prompt": [messages], "answer": ..., ...}]

The trainer renders the prompt itself (TRL applies the tokenizer's chat template with the
generation prompt, as `engine chat` does); the rows keep the messages and every other column,
which reach the reward functions as keyword arguments.
"""

from __future__ import annotations

from engine.errors import DataError


def prompt_ids(tokenizer, messages: list) -> list:
    """Token ids of the rendered prompt, ending with the assistant turn's opening (where sampling starts)."""
    from engine.data.render import require_chat_template

    require_chat_template(tokenizer)
    out = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    if isinstance(out, dict) or hasattr(out, "keys"):
        out = out["input_ids"]
    return list(out)


def prompt_rows(examples: list, path: str) -> list[dict]:
    """One row per prompt record for TRL: the messages under `prompt`, the other columns as they were.

    Every record must carry the same columns (a reward reads them as lists over the batch)."""
    rows, first = [], None
    for i, ex in enumerate(examples):
        if ex.kind != "prompt":
            raise DataError(f"{path}: record {i + 1} is a {ex.kind} record; online RL needs prompt-only records "
                            f"({{\"prompt\": ...}} plus any columns the rewards read).")
        keys = sorted(ex.extra)
        if first is None:
            first = keys
        elif keys != first:
            raise DataError(f"{path}: record {i + 1} has columns {keys}, the first record {first}; give every prompt "
                            f"record the same columns (the rewards receive each column as one list per batch).")
        rows.append({"prompt": ex.messages, **ex.extra})
    return rows


def rl_prompt_limit(max_prompt_len, max_len: int, max_completion_len: int) -> int:
    """sequence.max_prompt_len for the RL stages: 'auto' = what max_len leaves after rl.max_completion_len."""
    if max_prompt_len in (None, "auto"):
        return max(1, max_len - max_completion_len)
    return max(1, int(max_prompt_len))


def fit_prompt(tokenizer, messages: list, limit: int) -> tuple[list, bool] | None:
    """The prompt's messages cut to at most `limit` rendered tokens, and whether anything was cut; None when
    even the last message's final words do not fit beside the template's own tokens.

    Like the preference stages' prompts, it loses its start first: the oldest turns after any system
    message go, then the start of the last message's text (its end, usually the question, is kept).
    """
    if len(prompt_ids(tokenizer, messages)) <= limit:
        return messages, False
    system = [m for m in messages[:1] if m.get("role") == "system"]
    turns = messages[len(system):]
    while len(turns) > 1:
        turns = turns[1:]
        if len(prompt_ids(tokenizer, system + turns)) <= limit:
            return system + turns, True
    last = dict(turns[-1])
    text = last.get("content")
    if not isinstance(text, str):
        return None
    overhead = len(prompt_ids(tokenizer, system + [{**last, "content": ""}]))
    words = tokenizer(text, add_special_tokens=False)["input_ids"]
    keep = limit - overhead
    while keep > 0:  # decoding a cut and re-encoding it can come out a token longer: shrink until it fits
        candidate = system + [{**last, "content": tokenizer.decode(words[-keep:]).lstrip()}]
        if len(prompt_ids(tokenizer, candidate)) <= limit:
            return candidate, True
        keep -= 1
    return None
