"""An Ollama Modelfile beside the GGUF, derived from the tokenizer's own chat template.

Ollama ignores the Jinja template inside a GGUF for models it does not know and
needs a Go template instead; a missing or mismatched one is the classic "gibberish
in Ollama" report. We read the turn structure off the real template (chat_format)
and print it as a Go template, a SYSTEM line when the template adds its own system
prompt, and `PARAMETER stop` for the end-of-turn markers.

    ollama create my-model -f exports/my-model/Modelfile
"""

from __future__ import annotations

from typing import Optional

from exporters.gguf.chat_format import TurnFormat


def _go_literal(text: str) -> str:
    """Text placed literally inside a Go template (only '{{' needs escaping)."""
    return text.replace("{{", '{{ "{{" }}')


def go_template(fmt: TurnFormat, strip_bos: bool) -> str:
    """The Ollama TEMPLATE for a TurnFormat (BOS text left out when llama.cpp adds BOS itself).

    One line of actions with no trim markers: `{{-` would also eat the newlines that
    belong to a turn's own text (e.g. the '\\n' after '<|im_end|>').
    """
    head = "" if (strip_bos and fmt.bos_in_head) else fmt.head
    roles = ["user", "assistant"] + (["system"] if fmt.supports_system else [])
    parts = [_go_literal(head), "{{ range .Messages }}"]
    for n, role in enumerate(roles):
        kw = "if" if n == 0 else "else if"
        parts.append(f'{{{{ {kw} eq .Role "{role}" }}}}{_go_literal(fmt.prefix[role])}{{{{ .Content }}}}'
                     f"{_go_literal(fmt.suffix[role])}")
    parts += ["{{ end }}{{ end }}", _go_literal(fmt.generation_prompt)]
    return "".join(parts)


def stop_strings(fmt: TurnFormat, eot_text: Optional[str], eos_text: Optional[str]) -> list[str]:
    """Strings that must end a reply: the end-of-turn token, EOS, and the start of the next user turn."""
    out = []
    for s in (eot_text, eos_text):
        if s and s not in out:
            out.append(s)
    user_start = fmt.prefix.get("user", "").strip()
    if user_start:
        marker = user_start.split("\n")[0].strip()
        # e.g. '<|im_start|>user' -> '<|im_start|>' is the start of any next turn
        if marker.startswith("<") and ">" in marker:
            marker = marker[: marker.index(">") + 1]
        if marker and marker not in out:
            out.append(marker)
    return out


def _quote(text: str) -> str:
    return '"""' + text.replace('"""', '\\"\\"\\"') + '"""'


def render_modelfile(gguf_name: str, fmt: TurnFormat, stops: list, strip_bos: bool, model_name: str,
                     modelfile_path: str) -> str:
    """The Modelfile text."""
    lines = [
        f"# Ollama Modelfile for {model_name}, written by edgetune from the tokenizer's chat template.",
        f"# Import:  ollama create {model_name} -f {modelfile_path}",
        f"# Chat:    ollama run {model_name}",
        f"FROM ./{gguf_name}",
        f"TEMPLATE {_quote(go_template(fmt, strip_bos))}",
    ]
    if fmt.default_system is not None:
        lines.append(f"SYSTEM {_quote(fmt.default_system)}")
    for s in stops:
        lines.append(f'PARAMETER stop "{s}"')
    return "\n".join(lines) + "\n"


def render_go_like(fmt: TurnFormat, messages: list, strip_bos: bool) -> str:
    """What Ollama prints for `messages` with our TEMPLATE (it inserts SYSTEM as a first system message)."""
    msgs = list(messages)
    if fmt.default_system is not None and not any(m["role"] == "system" for m in msgs):
        msgs = [{"role": "system", "content": fmt.default_system}] + msgs
    out = "" if (strip_bos and fmt.bos_in_head) else fmt.head
    for m in msgs:
        if m["role"] == "system" and not fmt.supports_system:
            continue
        out += fmt.prefix[m["role"]] + m["content"] + fmt.suffix[m["role"]]
    return out + fmt.generation_prompt


def template_check(fmt: TurnFormat, render_fn, bos_text: str, strip_bos: bool) -> list[str]:
    """Differences between Ollama's rendering of our TEMPLATE and the real template (empty = same)."""
    from exporters.gguf.chat_format import SAMPLE_CONVERSATIONS

    problems = []
    for conv in SAMPLE_CONVERSATIONS:
        if conv[-1]["role"] != "user" or (not fmt.supports_system and any(m["role"] == "system" for m in conv)):
            continue
        try:
            want = render_fn(conv, True)
        except Exception:
            continue
        if strip_bos and fmt.bos_in_head and bos_text and want.startswith(bos_text):
            want = want[len(bos_text):]
        got = render_go_like(fmt, conv, strip_bos)
        if got != want:
            problems.append(f"{len(conv)}-message chat: template {want!r} vs Modelfile {got!r}")
    return problems
