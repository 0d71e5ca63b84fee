"""Built-in chat templates, by name, for models whose tokenizer ships none.

    model.chat_template=chatml                       # training and `engine data inspect --chat-template chatml`
    engine chat base-model.gguf --template llama3    # chatting with a GGUF that carries no template

A model's own template always wins unless the user names another one. A base model has
none, and guessing one silently would train it on turn markers nobody chose, so chat data
on such a model stops with an error that lists these names (raw text needs no template).
"""

from __future__ import annotations

from pathlib import Path

BUILTIN_TEMPLATES = {
    # Plain-text turn markers that any tokenizer can spell; the answer ends with the EOS token.
    "plain": (
        "{% for m in messages %}"
        "{% if m['role'] == 'system' %}{{ m['content'] }}\n\n"
        "{% elif m['role'] == 'user' %}### User:\n{{ m['content'] }}\n\n"
        "{% else %}### Assistant:\n{{ m['content'] }}{{ eos_token }}\n\n{% endif %}"
        "{% endfor %}"
        "{% if add_generation_prompt %}### Assistant:\n{% endif %}"
    ),
    "chatml": (
        "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    ),
    "llama3": (
        "{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' "
        "+ message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
    ),
    "gemma": (
        "{{ bos_token }}{% for message in messages %}{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
        "{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<start_of_turn>model\n' }}{% endif %}"
    ),
    "phi3": (
        "{% for message in messages %}{{ '<|' + message['role'] + '|>\n' + message['content'] + '<|end|>\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
    ),
}

# The template an export carries for a model with none of its own: a GGUF or ONNX file must carry
# one (Ollama, LM Studio and on-device apps render prompts with it).
EXPORT_FALLBACK = "plain"


def template_choices() -> str:
    """The names for error messages and help text."""
    return ", ".join(BUILTIN_TEMPLATES)


def resolve_chat_template(value: str) -> str:
    """Jinja text of a template given by built-in name, as Jinja text, or as the path of a Jinja file."""
    from engine.errors import ConfigError

    if value in BUILTIN_TEMPLATES:
        return BUILTIN_TEMPLATES[value]
    if "{" in value or "\n" in value:
        return value
    p = Path(value).expanduser()
    if not p.is_file():
        raise ConfigError(
            f"Chat template '{value}' is not a built-in name ({template_choices()}), Jinja text or an existing file."
        )
    return p.read_text(encoding="utf-8")
