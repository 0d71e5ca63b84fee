"""The API key: where it comes from, when it is required, and the constant-time check."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
from pathlib import Path
from typing import Optional

from engine.errors import EdgetuneError

KEY_ENV = "EDGETUNE_API_KEY"  # how the desktop app hands its child server a key (not visible in `ps`)
LOOPBACK_NAMES = {"localhost"}


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost: only this machine can connect."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_api_key(key: Optional[str], key_file: Optional[str]) -> Optional[str]:
    """The key from --api-key, --api-key-file or $EDGETUNE_API_KEY (in that order), or None."""
    if key_file:
        path = Path(key_file)
        if not path.is_file():
            raise EdgetuneError(f"API key file '{key_file}' not found.")
        key = path.read_text(encoding="utf-8").strip()
        if not key:
            raise EdgetuneError(f"API key file '{key_file}' is empty: put the key on its first line.")
    key = key or os.environ.get(KEY_ENV) or None
    if key is not None and (len(key) < 8 or any(c.isspace() for c in key) or not key.isascii()):
        raise EdgetuneError("The API key must be at least 8 printable ASCII characters without spaces, e.g. "
                            "python -c 'import secrets; print(secrets.token_urlsafe(24))'.")
    return key


def require_key_off_loopback(host: str, key: Optional[str]) -> None:
    """Binding anything but loopback exposes the models to the network: only with a key."""
    if not is_loopback(host) and not key:
        raise EdgetuneError(f"Serving on {host} lets other machines use your models: that needs a key. Pass "
                            f"--api-key KEY or --api-key-file FILE (or keep the default --host 127.0.0.1).")


def key_matches(expected: str, headers: dict[str, str]) -> bool:
    """Bearer token (OpenAI clients) or x-api-key, compared in constant time."""
    given = headers.get("authorization", "")
    given = given[7:].strip() if given[:7].lower() == "bearer " else headers.get("x-api-key", "")
    # digests of equal length, so the comparison time does not even tell the key's length
    return hmac.compare_digest(hashlib.sha256(given.encode("utf-8", "replace")).digest(),
                               hashlib.sha256(expected.encode("utf-8")).digest())
