"""GGUF truncation check: it lives in engine.formats.gguf_integrity (model import and chat use it too).

Kept so `from exporters.gguf.integrity import ...` keeps working.
"""

from engine.formats.gguf_integrity import DamagedGguf, check_gguf  # noqa: F401
