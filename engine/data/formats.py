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

    kind: str  # "chat" | "text" | "preference" | "kto" | "prompt"
    messages: list = field(default_factory=list)  # chat; the prompt of preference and kto records
    text: str = ""
    chosen: str = ""
    rejected: str = ""
    completion: str = ""  # kto: the answer that was rated
    label: Optional[bool] = None  # kto: thumbs up (True) or down (False)
    extra: dict = field(default_factory=dict)  # prompt: the record's other columns (answer, ...) for the rewards


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
    """Pairs of answers to one prompt, the chosen one preferred. Layouts read:

    TRL standard       {"prompt": "...", "chosen": "...", "rejected": "..."}
    TRL conversational {"prompt": [messages], "chosen": [{"role": "assistant", ...}], "rejected": [...]}
    TRL implicit       {"chosen": [whole conversation], "rejected": [whole conversation]} (prompt = shared turns)
    LLaMA-Factory      {"conversations": [turns], "chosen": {"from": "gpt", "value": ...}, "rejected": {...}}
                       {"instruction": ..., "input": ..., "chosen": "...", "rejected": "..."}
    """

    name = "preference"
    fields = ("prompt", "chosen", "rejected")
    required = ("chosen", "rejected")

    def convert(self, rec, columns, system_prompt):
        chosen_raw, rejected_raw = (rec.get(self.col(columns, k)) for k in ("chosen", "rejected"))
        messages = self._prompt(rec, columns, chosen_raw, rejected_raw)
        chosen, rejected = (self._answer(v, k, columns) for v, k in ((chosen_raw, "chosen"), (rejected_raw, "rejected")))
        if chosen.strip() == rejected.strip():
            raise RecordError("chosen and rejected are identical, so the pair teaches nothing; fix or drop the record")
        if not any(m["role"] == "user" for m in messages):
            raise RecordError("the prompt has no user turn")
        return Example("preference", messages=_with_system(messages, system_prompt), chosen=chosen, rejected=rejected)

    def _prompt(self, rec, columns, chosen, rejected) -> list:
        prompt = rec.get(self.col(columns, "prompt"))
        if isinstance(prompt, list):  # conversational
            return [_normalise_message(m) for m in prompt]
        if isinstance(prompt, str) and prompt.strip():
            return [{"role": "user", "content": prompt}]
        turns = rec.get(self.col(columns, "conversations"))
        if isinstance(turns, list) and turns:  # LLaMA-Factory sharegpt ranking data
            messages = [_normalise_message(m) for m in turns]
            system = rec.get(self.col(columns, "system"))
            if isinstance(system, str) and system.strip() and messages[0]["role"] != "system":
                messages.insert(0, {"role": "system", "content": system})
            return messages
        instruction = rec.get(self.col(columns, "instruction"))
        if isinstance(instruction, str) and instruction.strip():  # LLaMA-Factory alpaca ranking data
            extra = self.text_of(rec, columns, "input", required=False)
            messages = [{"role": "user", "content": f"{instruction}\n\n{extra}" if extra else instruction}]
            system = self.text_of(rec, columns, "system", required=False)
            return ([{"role": "system", "content": system}] if system else []) + messages
        if isinstance(chosen, list) and isinstance(rejected, list) and len(chosen) > 1 and len(rejected) > 1:
            shared = []  # implicit prompt: the turns both conversations share
            for a, b in zip(chosen, rejected):
                if a != b:
                    break
                shared.append(_normalise_message(a))
            if shared and shared[-1]["role"] != "assistant":
                return shared
        raise RecordError(
            f"no prompt: give a '{self.col(columns, 'prompt')}' field (text or messages), LLaMA-Factory's "
            f"'conversations' or 'instruction', or chosen/rejected as whole conversations that share their prompt turns")

    def _answer(self, value, key, columns):
        if isinstance(value, list) and value:
            value = _normalise_message(value[-1])
            if value["role"] != "assistant":
                raise RecordError(f"field '{self.col(columns, key)}' should end with an assistant message")
            value = value["content"]
        elif isinstance(value, dict):
            value = _normalise_message(value)["content"]
        if not isinstance(value, str) or not value.strip():
            raise RecordError(f"field '{self.col(columns, key)}' is missing or empty")
        return value


@register
class KtoFormat(RecordFormat):
    """Unpaired thumbs-up/down data: {"prompt": ..., "completion": ..., "label": true|false} (TRL's KTO layout)."""

    name = "kto"
    fields = ("prompt", "completion", "label")
    required = fields

    def convert(self, rec, columns, system_prompt):
        messages = _prompt_messages(rec, self.col(columns, "prompt"))
        completion = rec.get(self.col(columns, "completion"))
        if isinstance(completion, list) and completion:
            completion = _normalise_message(completion[-1])["content"]
        if not isinstance(completion, str) or not completion.strip():
            raise RecordError(f"field '{self.col(columns, 'completion')}' is missing or empty")
        label = rec.get(self.col(columns, "label"))
        if not isinstance(label, bool):
            raise RecordError(f"field '{self.col(columns, 'label')}' must be true (desirable) or false (undesirable), "
                              f"got {label!r}")
        return Example("kto", messages=_with_system(messages, system_prompt), completion=completion, label=label)


@register
class PromptFormat(RecordFormat):
    """Prompt-only records for online RL: {"prompt": "..." or [messages], <any other columns>}.

    The other columns (a reference `answer`, a test case, ...) travel with the prompt to the reward
    functions as keyword arguments, as in TRL's GRPOTrainer.
    """

    name = "prompt"
    fields = ("prompt",)
    required = fields

    def convert(self, rec, columns, system_prompt):
        key = self.col(columns, "prompt")
        messages = _prompt_messages(rec, key)
        if messages[-1]["role"] == "assistant":
            raise RecordError(f"field '{key}' ends with an assistant turn; a prompt for RL ends with the user's turn "
                              f"(the policy writes the answer)")
        extra = {k: v for k, v in rec.items() if k != key}
        return Example("prompt", messages=_with_system(messages, system_prompt), extra=extra)


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


def _prompt_messages(rec: dict, key: str) -> list:
    """A record's prompt as messages: a conversation as given, or a string as one user turn."""
    prompt = rec.get(key)
    if isinstance(prompt, list) and prompt:
        return [_normalise_message(m) for m in prompt]
    if isinstance(prompt, str) and prompt.strip():
        return [{"role": "user", "content": prompt}]
    raise RecordError(f"field '{key}' is missing or empty (no prompt)")


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


# Most specific first: a LLaMA-Factory preference record also has sharegpt's 'conversations' or
# alpaca's 'instruction', a KTO record has a 'prompt', etc.
DETECT_ORDER = ("preference", "kto", "messages", "sharegpt", "alpaca", "text", "prompt")


def detect_format(rec: object, columns: dict) -> Optional[str]:
    """Name of the first format whose fields the record has, or None."""
    if not isinstance(rec, dict):
        return None
    for name in DETECT_ORDER:
        if FORMATS[name].detect(rec, columns):
            return name
    return None
