"""One chat template for every backend, so a conversation gives the same token ids everywhere."""

from __future__ import annotations

from typing import Optional


def render_prompt(template: str, messages: list[dict], bos_token: Optional[str] = "", eos_token: Optional[str] = "") -> str:
    """Render `messages` plus the assistant generation prompt with transformers' own Jinja setup."""
    from transformers.utils.chat_template_utils import render_jinja_template

    rendered, _ = render_jinja_template([messages], chat_template=template, add_generation_prompt=True,
                                        bos_token=bos_token or "", eos_token=eos_token or "")
    return rendered[0]
