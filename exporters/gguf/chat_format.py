"""What a chat template does, found by rendering it: the text around each role's turn.

A Jinja chat template is a program; llama.cpp and Ollama each need facts out of it
(which token ends a turn, what Ollama's Go template must print). Rather than parse
Jinja, we render it with marker contents and read off the text between them:

    [user U]                      -> head + user_prefix + U + user_suffix
    [user U, assistant A]         -> ... + assistant_prefix + A + assistant_suffix
    [user U, assistant A, user V] -> ... + assistant_suffix + user_prefix + V ...

`TurnFormat.render` re-assembles a conversation from those parts, and
`TurnFormat.matches` checks that the result equals the real template's output on
sample conversations, so a template this reading cannot represent is reported,
never silently mis-exported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

_U1, _A1, _U2, _A2, _S1 = "\u27e6user one\u27e7", "\u27e6answer one\u27e7", "\u27e6user two\u27e7", "\u27e6answer two\u27e7", "\u27e6system one\u27e7"

SAMPLE_CONVERSATIONS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "user", "content": "Hi!"}, {"role": "assistant", "content": "Hello! How can I help?"},
     {"role": "user", "content": "Tell me a joke."}],
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Name a colour."},
     {"role": "assistant", "content": "Blue."}, {"role": "user", "content": "Another."}],
]


@dataclass
class TurnFormat:
    """The text a chat template puts around each turn (roles: system, user, assistant)."""

    head: str = ""               # printed once before the first turn (BOS text, ...)
    default_system: Optional[str] = None  # system text the template adds when none is given
    prefix: dict = field(default_factory=dict)
    suffix: dict = field(default_factory=dict)
    generation_prompt: str = ""  # printed after the last turn to let the assistant speak
    conversation_end: str = ""   # printed after the last turn when no generation prompt follows (Phi-3: EOS)
    supports_system: bool = True
    bos_in_head: bool = False    # the template itself prints the BOS token first

    def render(self, messages: list, add_generation_prompt: bool) -> str:
        """The conversation as the template would print it (within what TurnFormat can express)."""
        msgs = list(messages)
        if self.default_system is not None and (not msgs or msgs[0]["role"] != "system"):
            msgs = [{"role": "system", "content": self.default_system}] + msgs
        out = [self.head]
        for m in msgs:
            if m["role"] == "system" and not self.supports_system:
                continue
            out += [self.prefix[m["role"]], m["content"], self.suffix[m["role"]]]
        out.append(self.generation_prompt if add_generation_prompt else self.conversation_end)
        return "".join(out)

    def matches(self, render_fn, conversations=SAMPLE_CONVERSATIONS) -> list[str]:
        """Differences between this format and the real template on sample conversations (empty = same)."""
        problems = []
        for conv in conversations:
            if not self.supports_system and any(m["role"] == "system" for m in conv):
                continue
            for gen in (True, False):
                try:
                    want = render_fn(conv, gen)
                except Exception:  # the template itself refuses this conversation
                    continue
                got = self.render(conv, gen)
                if got != want:
                    problems.append(f"{len(conv)}-message conversation (generation prompt {gen}): "
                                    f"template gives {want!r}, turn format gives {got!r}")
        return problems


class TemplateNotUnderstood(ValueError):
    """The chat template's turns could not be read off by rendering."""


def _between(text: str, start: str, end: str) -> str:
    i = text.index(start) + len(start)
    return text[i:text.index(end, i)]


def _common_prefix(a: str, b: str) -> str:
    """Longest common prefix, cut back so it does not end inside a '<...>' marker."""
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    prefix = a[:n]
    if prefix.rfind("<") > prefix.rfind(">"):
        prefix = prefix[: prefix.rfind("<")]
    return prefix


def analyse_template(render_fn, bos_text: str = "") -> TurnFormat:
    """Read a TurnFormat off `render_fn(messages, add_generation_prompt) -> str` (bos_text: the BOS token's text)."""
    try:
        r_u = render_fn([{"role": "user", "content": _U1}], False)
        r_u_gen = render_fn([{"role": "user", "content": _U1}], True)
        r_ua = render_fn([{"role": "user", "content": _U1}, {"role": "assistant", "content": _A1}], False)
        r_uau = render_fn([{"role": "user", "content": _U1}, {"role": "assistant", "content": _A1},
                           {"role": "user", "content": _U2}], False)
        r_uaua = render_fn([{"role": "user", "content": _U1}, {"role": "assistant", "content": _A1},
                            {"role": "user", "content": _U2}, {"role": "assistant", "content": _A2}], False)
    except Exception as e:
        raise TemplateNotUnderstood(f"the template fails on a plain user/assistant conversation: {e}") from None
    for text, marks in ((r_ua, (_U1, _A1)), (r_uau, (_U1, _A1, _U2))):
        if any(m not in text for m in marks):
            raise TemplateNotUnderstood("the template drops message contents")
    after = lambda text, mark: text[text.index(mark) + len(mark):]  # noqa: E731
    x = after(r_uau, _U2)              # user_suffix + conversation_end
    y = after(r_ua, _A1)               # assistant_suffix + conversation_end
    z = _between(r_ua, _U1, _A1)       # user_suffix + assistant_prefix
    w = _between(r_uau, _A1, _U2)      # assistant_suffix + user_prefix
    g = after(r_u_gen, _U1)            # user_suffix + generation_prompt
    a_suffix = _common_prefix(y, w)
    conversation_end = y[len(a_suffix):]  # e.g. Phi-3 closes a finished conversation with EOS
    if not x.endswith(conversation_end):
        raise TemplateNotUnderstood("the conversation ends differently after user and assistant turns")
    u_suffix = x[: len(x) - len(conversation_end)]
    if not (z.startswith(u_suffix) and g.startswith(u_suffix)):
        raise TemplateNotUnderstood("the user turn ends differently before an answer")
    a_prefix, gen = z[len(u_suffix):], g[len(u_suffix):]
    u_prefix = w[len(a_suffix):]
    head_and_first = r_u[: r_u.index(_U1)]
    if not head_and_first.endswith(u_prefix) or not r_u.endswith(_U1 + u_suffix + conversation_end):
        raise TemplateNotUnderstood("the first user turn differs from later ones")
    head = head_and_first[: len(head_and_first) - len(u_prefix)]

    fmt = TurnFormat(head=head, prefix={"user": u_prefix, "assistant": a_prefix},
                     suffix={"user": u_suffix, "assistant": a_suffix}, generation_prompt=gen,
                     conversation_end=conversation_end)
    if _A2 in r_uaua and not r_uaua.endswith(_A2 + a_suffix + conversation_end):
        raise TemplateNotUnderstood("assistant turns end differently")

    # system turn: rendered before the first user turn, or not supported at all.
    try:
        r_su = render_fn([{"role": "system", "content": _S1}, {"role": "user", "content": _U1}], False)
    except Exception:
        r_su = None
    if r_su is None or _S1 not in r_su:
        fmt.supports_system = False
        fmt.prefix["system"], fmt.suffix["system"] = "", ""
        return fmt
    before_user = r_su[: r_su.index(_U1)]
    if not before_user.endswith(u_prefix):
        fmt.supports_system = False  # e.g. Gemma 3 folds the system text into the first user turn
        fmt.prefix["system"], fmt.suffix["system"] = "", ""
        return fmt
    sys_block = before_user[: len(before_user) - len(u_prefix)]
    s_idx = sys_block.index(_S1)
    upto_system, s_suffix = sys_block[:s_idx], sys_block[s_idx + len(_S1):]  # head + system prefix; suffix
    fmt.suffix["system"] = s_suffix
    if len(head) >= len(upto_system) + len(s_suffix) and head.startswith(upto_system) and head.endswith(s_suffix):
        # The template adds its own system turn when none is given (SmolLM2 does).
        fmt.default_system = head[len(upto_system): len(head) - len(s_suffix)]
        fmt.head = bos_text if bos_text and upto_system.startswith(bos_text) else ""
    elif not upto_system.startswith(head):
        raise TemplateNotUnderstood("the system turn changes what comes before it")
    fmt.prefix["system"] = upto_system[len(fmt.head):]
    return fmt


_BOS = "\u27e6bos\u27e7"


def render_function(tokenizer, template: Optional[str] = None, bos_token: Optional[str] = None):
    """`(messages, add_generation_prompt) -> text` with the tokenizer's template (or `template`)."""

    def render(messages, add_generation_prompt):
        kwargs = {"bos_token": bos_token} if bos_token is not None else {}
        return tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False,
                                             add_generation_prompt=add_generation_prompt, **kwargs)

    return render


def analyse_tokenizer(tokenizer, template: Optional[str] = None) -> TurnFormat:
    """The TurnFormat of an HF tokenizer's chat template (or of `template`).

    The template is rendered with a marker as BOS text so that a template printing
    `{{ bos_token }}` is told apart from one whose first turn merely starts with the
    same characters (SmolLM2's BOS is '<|im_start|>').
    """
    fmt = analyse_template(render_function(tokenizer, template, _BOS), _BOS)
    real = tokenizer.bos_token or ""
    fmt.bos_in_head = fmt.head.startswith(_BOS)
    fmt.head = fmt.head.replace(_BOS, real)
    for part in (fmt.prefix, fmt.suffix):
        for role in part:
            part[role] = part[role].replace(_BOS, real)
    fmt.generation_prompt = fmt.generation_prompt.replace(_BOS, real)
    fmt.conversation_end = fmt.conversation_end.replace(_BOS, real)
    if fmt.default_system is not None:
        fmt.default_system = fmt.default_system.replace(_BOS, real)
    return fmt
