"""Record formats, detected automatically and turned into one `Example` shape.

A format is a small class registered in FORMATS: it names its fields, says
whether a record looks like it, and converts a record into an `Example`:
a chat (list of {role, content} messages), raw text, or a preference pair.
`data.columns` renames the fields to the user's column names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional


class RecordError(ValueError):
    """A record does not have the shape its format needs."""


@dataclass
class Example:
    """One training example in the engine's own shape."""

    kind: str  # "chat" | "text" | "preference"
    messages: list = field(default_factory=list)  # chat and preference prompt
    text: str = ""
    chosen: str = ""
    rejected: str = ""


FORMATS: dict[str, "RecordFormat"] = {}


def register(cls):
    FORMATS[cls.name] = cls()
    return cls


class RecordFormat:
    name = ""
    fields: tuple = ()
    required: tuple = ()

    def col(self, columns: dict, key: str) -> str:
        return columns.get(key, key)

    def detect(self, rec: dict, columns: dict) -> bool:
        return all(self.col(columns, k) in rec for k in self.required)

    def convert(self, rec: dict, columns: dict, system_prompt: Optional[str]) -> Example:
        raise NotImplementedError(self.name)

    def text_of(self, rec: dict, columns: dict, key: str, required: bool = True) -> str:
        name = self.col(columns, key)
        value = rec.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            if required:
                raise RecordError(f"field '{name}' is missing or empty")
            return ""
        if not isinstance(value, str):
            raise RecordError(f"field '{name}' should be text, got {type(value).__name__}")
        return value


def _with_system(messages: list, system_prompt: Optional[str]) -> list:
    if system_prompt and not (messages and messages[0]["role"] == "system"):
        return [{"role": "system", "content": system_prompt}] + messages
    return messages


def _check_turns(messages: list) -> list:
    if not any(m["role"] == "assistant" for m in messages):
        raise RecordError("conversation has no assistant turn to learn from")
    for m in messages:
        if not isinstance(m["content"], str):
            raise RecordError(f"message content should be text, got {type(m['content']).__name__}")
    return messages


@register
class PreferenceFormat(RecordFormat):
    name = "preference"
    fields = ("prompt", "chosen", "rejected")
    required = fields

    def convert(self, rec, columns, system_prompt):
        prompt = rec.get(self.col(columns, "prompt"))
        if isinstance(prompt, list):  # conversational preference data
            messages = [_normalise_message(m) for m in prompt]
        else:
            messages = [{"role": "user", "content": self.text_of(rec, columns, "prompt")}]
        chosen, rejected = (self._answer(rec.get(self.col(columns, k)), k, columns) for k in ("chosen", "rejected"))
        return Example("preference", messages=_with_system(messages, system_prompt), chosen=chosen, rejected=rejected)

    def _answer(self, value, key, columns):
        if isinstance(value, list) and value:
            value = _normalise_message(value[-1])["content"]
        if not isinstance(value, str) or not value.strip():
            raise RecordError(f"field '{self.col(columns, key)}' is missing or empty")
        return value


ROLE_NAMES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "model": "assistant",
              "bot": "assistant", "system": "system", "tool": "tool"}


def _normalise_message(m) -> dict:
    if not isinstance(m, dict):
        raise RecordError(f"a message should be an object, got {type(m).__name__}")
    role = m.get("role", m.get("from"))
    content = m.get("content", m.get("value"))
    if role not in ROLE_NAMES:
        raise RecordError(f"unknown role {role!r}; expected one of {sorted(ROLE_NAMES)}")
    if content is None:
        raise RecordError(f"message with role {role!r} has no content")
    return {"role": ROLE_NAMES[role], "content": content}


@register
class MessagesFormat(RecordFormat):
    """OpenAI style: {"messages": [{"role": "user", "content": "..."}, ...]}."""

    name = "messages"
    fields = ("messages",)
    required = fields

    def detect(self, rec, columns):
        value = rec.get(self.col(columns, "messages"))
        return isinstance(value, list) and bool(value) and isinstance(value[0], dict) and "role" in value[0]

    def convert(self, rec, columns, system_prompt):
        value = rec.get(self.col(columns, "messages"))
        if not isinstance(value, list) or not value:
            raise RecordError(f"field '{self.col(columns, 'messages')}' should be a non-empty list of messages")
        return Example("chat", messages=_check_turns(_with_system([_normalise_message(m) for m in value], system_prompt)))


@register
class ShareGptFormat(RecordFormat):
    """{"conversations": [{"from": "human", "value": "..."}, {"from": "gpt", ...}]}."""

    name = "sharegpt"
    fields = ("conversations", "system")
    required = ("conversations",)

    def convert(self, rec, columns, system_prompt):
        value = rec.get(self.col(columns, "conversations"))
        if not isinstance(value, list) or not value:
            raise RecordError(f"field '{self.col(columns, 'conversations')}' should be a non-empty list of turns")
        messages = [_normalise_message(m) for m in value]
        system = rec.get(self.col(columns, "system"))
        if isinstance(system, str) and system.strip() and messages[0]["role"] != "system":
            messages.insert(0, {"role": "system", "content": system})
        return Example("chat", messages=_check_turns(_with_system(messages, system_prompt)))


@register
class AlpacaFormat(RecordFormat):
    """{"instruction": ..., "input": optional, "output": ..., "system": optional}."""

    name = "alpaca"
    fields = ("instruction", "input", "output", "system")
    required = ("instruction", "output")

    def convert(self, rec, columns, system_prompt):
        instruction = self.text_of(rec, columns, "instruction")
        extra = self.text_of(rec, columns, "input", required=False)
        output = self.text_of(rec, columns, "output")
        user = f"{instruction}\n\n{extra}" if extra else instruction
        messages = [{"role": "user", "content": user}, {"role": "assistant", "content": output}]
        system = self.text_of(rec, columns, "system", required=False) or system_prompt
        return Example("chat", messages=_with_system(messages, system))


@register
class TextFormat(RecordFormat):
    """Raw text for continued pre-training: {"text": "..."}; loss on every token."""

    name = "text"
    fields = ("text",)
    required = fields

    def convert(self, rec, columns, system_prompt):
        return Example("text", text=self.text_of(rec, columns, "text"))


# Most specific first: a preference record may also have a 'text'-like field, etc.
DETECT_ORDER = ("preference", "messages", "sharegpt", "alpaca", "text")


def detect_format(rec: object, columns: dict) -> Optional[str]:
    """Name of the first format whose fields the record has, or None."""
    if not isinstance(rec, dict):
        return None
    for name in DETECT_ORDER:
        if FORMATS[name].detect(rec, columns):
            return name
    return None
