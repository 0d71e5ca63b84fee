"""Render examples with the model's chat template and mask everything but the answers.

Why character spans: a chat template is a string program, and the tokens of a
rendered prefix are not always a prefix of the full conversation's tokens. So we
render the whole conversation once, find each assistant turn as a character
span (end of the prompt rendered with `add_generation_prompt=True` up to the end
of the conversation rendered through that turn), tokenise the full text once
with offsets, and give a token its label only if it starts inside a span.
Everything else gets -100. The end-of-turn token falls inside the span, so the
model learns to stop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from engine.data.formats import Example

IGNORE = -100

# Shortest sequence.max_len that can hold a prompt, an answer and its end-of-turn token.
MIN_MAX_LEN = 16


def max_len_problem(max_len: int, key: str = "sequence.max_len") -> Optional[str]:
    """The message for a max_len too short to train on (None when it is long enough)."""
    if max_len >= MIN_MAX_LEN:
        return None
    return (f"{key}={max_len} is too short to hold a prompt and an answer; use at least {MIN_MAX_LEN} "
            f"(128 or more is usual).")

# What carries loss in a chat record (data.loss_on): the assistant turns, or every token.
LOSS_ON = ("assistant", "all")


@dataclass
class Encoded:
    input_ids: list
    labels: list
    truncated: bool = False
    text: str = ""


def ensure_chat_template(tokenizer, override: Optional[str] = None, default: Optional[str] = None) -> None:
    """Give the tokenizer the user's template (a built-in name, Jinja text or a file), else keep its own.

    A tokenizer without a template keeps none unless `default` names a built-in one: training and
    `engine data inspect` then refuse chat records (see Renderer), instead of guessing turn markers.
    """
    from engine.data.chat_templates import resolve_chat_template

    if override:
        tokenizer.chat_template = resolve_chat_template(override)
    elif default and not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = resolve_chat_template(default)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token


def require_chat_template(tokenizer) -> None:
    """Raise DataError naming the fix when chat records meet a tokenizer without a template."""
    if getattr(tokenizer, "chat_template", None):
        return
    from engine.data.chat_templates import template_choices
    from engine.errors import DataError

    name = getattr(tokenizer, "name_or_path", "") or "this model"
    raise DataError(
        f"The tokenizer of '{name}' has no chat template, so chat records (alpaca, sharegpt, messages) cannot be "
        f"rendered the way the model will be prompted. Choose one: model.chat_template=<name> with a built-in "
        f"template ({template_choices()}), a Jinja file or the template text (`engine data inspect --chat-template "
        f"<name>`); or train on raw text records ({{\"text\": ...}}), which need none."
    )


class Renderer:
    """Turns `Example`s into input_ids/labels for one tokenizer and max length."""

    def __init__(self, tokenizer, max_len: int, loss_on: str = "assistant"):
        if loss_on not in LOSS_ON:
            raise ValueError(f"loss_on={loss_on!r}; expected one of {LOSS_ON}")
        self.tok = tokenizer
        self.max_len = max_len
        self.loss_on = loss_on
        self.eos_id = tokenizer.eos_token_id

    def _render(self, messages: list, generation_prompt: bool) -> str:
        return self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)

    def chat_spans(self, messages: list) -> tuple[str, list[tuple[int, int]]]:
        """Full rendered text and the character spans of the assistant turns."""
        full = self._render(messages, False)
        spans = []
        for i, m in enumerate(messages):
            if m["role"] != "assistant":
                continue
            start = len(self._render(messages[:i], True)) if i else 0
            end = len(self._render(messages[: i + 1], False))
            # Templates that render history differently fall back to locating the content.
            if full[:end] != self._render(messages[: i + 1], False):
                found = full.find(m["content"], spans[-1][1] if spans else 0)
                start, end = (found, found + len(m["content"])) if found >= 0 else (0, 0)
            while end > start and full[end - 1].isspace():  # the newline after end-of-turn is template glue
                end -= 1
            spans.append((start, end))
        return full, spans

    def encode(self, ex: Example) -> Optional[Encoded]:
        """Tokenise one chat (or preference/KTO, using the chosen/rated answer) example; None if nothing is left to learn."""
        if ex.kind == "text":
            return self.encode_text(ex.text)[0] if ex.text else None
        require_chat_template(self.tok)
        messages = ex.messages
        if ex.kind in ("preference", "kto"):  # the chosen (or rated) answer, as SFT would see it
            messages = messages + [{"role": "assistant", "content": ex.chosen or ex.completion}]
        text, spans = self.chat_spans(messages)
        enc = self.tok(text, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = enc["input_ids"], enc["offset_mapping"]
        if self.loss_on == "all":
            labels = list(ids)
        else:
            labels = [tid if any(s <= a < e for s, e in spans) else IGNORE for tid, (a, _) in zip(ids, offsets)]
        bos = self.tok.bos_token_id
        if bos is not None and getattr(self.tok, "add_bos_token", False) and (not ids or ids[0] != bos):
            ids, labels = [bos] + ids, [IGNORE] + labels
        truncated = len(ids) > self.max_len
        if truncated:
            ids, labels = self._truncate(ids, labels)
        if all(l == IGNORE for l in labels):
            return None
        return Encoded(ids, labels, truncated, text)

    def _truncate(self, ids: list, labels: list) -> tuple[list, list]:
        """Cut to max_len so that the record still ends the way a trained turn ends: with EOS.

        A cut inside a trained span keeps max_len tokens and makes the last one EOS (so the model
        still learns to stop). A cut in an untrained part (a later user turn) ends the record after
        the last trained token instead, which is that turn's own end-of-turn token: putting EOS with a
        label in the middle of a user turn would teach the model to end a turn where none ends.
        """
        ids, labels = ids[: self.max_len], labels[: self.max_len]
        if labels[-1] == IGNORE:
            trained = [i for i, l in enumerate(labels) if l != IGNORE]
            if not trained:
                return ids, labels  # nothing to learn: the caller drops it
            end = trained[-1] + 1
            return ids[:end], labels[:end]
        ids[-1] = labels[-1] = self.eos_id
        return ids, labels

    def encode_text(self, text: str) -> list[Encoded]:
        """Raw text: loss on every token, EOS at the end, cut into windows of max_len tokens.

        Consecutive windows share one token (stride max_len - 1): a window's first token is only
        context (a causal LM predicts tokens 1..n from 0..n-1), so with a shared boundary token every
        token after the first, the final EOS included, is predicted exactly once.
        """
        ids = self.tok(text, add_special_tokens=False)["input_ids"] + [self.eos_id]
        bos = self.tok.bos_token_id
        if bos is not None and getattr(self.tok, "add_bos_token", False):
            ids = [bos] + ids
        out = []
        stride = max(1, self.max_len - 1)
        for start in range(0, max(1, len(ids) - 1), stride):
            chunk = ids[start : start + self.max_len]
            if len(chunk) > 1:
                out.append(Encoded(chunk, list(chunk), False, text))
        return out
