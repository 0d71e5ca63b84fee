"""Load tokenizers and models from a resolved source, with the engine's defaults."""

from __future__ import annotations

from typing import Optional

from engine.errors import ModelSourceError
from engine.models.sources import resolve_model


def load_tokenizer(spec: str, chat_template: Optional[str] = None, revision: Optional[str] = None):
    """The model's tokenizer with a chat template and a pad token guaranteed."""
    from transformers import AutoTokenizer

    from engine.data.render import ensure_chat_template

    resolved = resolve_model(spec, revision)
    try:
        tok = AutoTokenizer.from_pretrained(str(resolved.path))
    except Exception as e:
        raise ModelSourceError(f"Cannot load the tokenizer of '{spec}' from {resolved.path}: {e}") from None
    ensure_chat_template(tok, chat_template)
    return tok
