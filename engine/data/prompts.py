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
