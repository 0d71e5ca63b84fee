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

# For base models that ship no chat template.
FALLBACK_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'system' %}{{ m['content'] }}\n\n"
    "{% elif m['role'] == 'user' %}### User:\n{{ m['content'] }}\n\n"
    "{% else %}### Assistant:\n{{ m['content'] }}{{ eos_token }}\n\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}### Assistant:\n{% endif %}"
)


@dataclass
class Encoded:
    input_ids: list
    labels: list
    truncated: bool = False
    text: str = ""


def template_text(value: str) -> str:
    """A template given as Jinja text or as the path of a Jinja file."""
    from pathlib import Path

    if "{" in value or "\n" in value:
        return value
    p = Path(value).expanduser()
    if not p.is_file():
        from engine.errors import ConfigError

        raise ConfigError(f"Chat template '{value}' is neither Jinja text nor an existing file.")
    return p.read_text(encoding="utf-8")


def ensure_chat_template(tokenizer, override: Optional[str] = None) -> None:
    """Give the tokenizer the user's template, its own, or the fallback."""
    if override:
        tokenizer.chat_template = template_text(override)
    elif not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = FALLBACK_TEMPLATE
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token


class Renderer:
    """Turns `Example`s into input_ids/labels for one tokenizer and max length."""

    def __init__(self, tokenizer, max_len: int):
        self.tok = tokenizer
        self.max_len = max_len
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
        """Tokenise one chat (or preference, using the chosen answer) example; None if nothing is left to learn."""
        if ex.kind == "text":
            return self.encode_text(ex.text)[0] if ex.text else None
        messages = ex.messages
        if ex.kind == "preference":
            messages = messages + [{"role": "assistant", "content": ex.chosen}]
        text, spans = self.chat_spans(messages)
        enc = self.tok(text, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = enc["input_ids"], enc["offset_mapping"]
        labels = [tid if any(s <= a < e for s, e in spans) else IGNORE for tid, (a, _) in zip(ids, offsets)]
        bos = self.tok.bos_token_id
        if bos is not None and getattr(self.tok, "add_bos_token", False) and (not ids or ids[0] != bos):
            ids, labels = [bos] + ids, [IGNORE] + labels
        truncated = len(ids) > self.max_len
        if truncated:
            # Keep the answer's end: cut, then make the last position EOS so the model still learns to stop.
            ids, labels = ids[: self.max_len], labels[: self.max_len]
            ids[-1] = self.eos_id
            labels[-1] = self.eos_id if any(l != IGNORE for l in labels[:-1]) else IGNORE
        if all(l == IGNORE for l in labels):
            return None
        return Encoded(ids, labels, truncated, text)

    def encode_text(self, text: str) -> list[Encoded]:
        """Raw text: loss on every token, EOS at the end, cut into max_len windows."""
        ids = self.tok(text, add_special_tokens=False)["input_ids"] + [self.eos_id]
        bos = self.tok.bos_token_id
        if bos is not None and getattr(self.tok, "add_bos_token", False):
            ids = [bos] + ids
        out = []
        for start in range(0, len(ids), self.max_len):
            chunk = ids[start : start + self.max_len]
            if len(chunk) > 1:
                out.append(Encoded(chunk, list(chunk), len(ids) > self.max_len, text))
        return out
