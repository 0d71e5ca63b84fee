"""`opt`: a config dataclass field with its help text (the one documentation of every option)."""

from __future__ import annotations

from dataclasses import field
from typing import Any


def opt(default: Any, help: str, **extra: Any) -> Any:
    """A dataclass field with help text (and optional extra metadata such as choices)."""
    meta = {"help": help, **extra}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)
