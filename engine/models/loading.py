"""Load tokenizers with the engine's defaults (a chat template and a pad token, always)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from engine.errors import ModelSourceError
from engine.models.sources import resolve_model


def tokenizer_from_dir(path: str | Path, chat_template: Optional[str] = None, default_template: Optional[str] = None,
                       trust_remote_code: bool = False):
    """The tokenizer saved in a folder (a model, an adapter or a merged run).

    `chat_template` replaces the folder's template; `default_template` (a built-in name) is used
    only when the folder has none. See engine.data.render.ensure_chat_template.
    """
    from transformers import AutoTokenizer

    from engine.data.render import ensure_chat_template

    try:
        tok = AutoTokenizer.from_pretrained(str(path), trust_remote_code=trust_remote_code)
    except Exception as e:
        raise ModelSourceError(f"Cannot load a tokenizer from {path}: {e}") from None
    ensure_chat_template(tok, chat_template, default_template)
    return tok


def load_tokenizer(spec: str, chat_template: Optional[str] = None, revision: Optional[str] = None):
    """The tokenizer of any model spec (bundled name, folder, .gguf, hub id, run folder)."""
    return tokenizer_from_dir(resolve_model(spec, revision, purpose="tokenizer").path, chat_template)
