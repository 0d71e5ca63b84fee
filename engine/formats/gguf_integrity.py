"""Check that a GGUF file is whole: header readable, every tensor's data inside the file.

A copy cut short (full disk, killed process, partial download) still starts with a
valid header; llama.cpp then fails at load time or, worse, maps garbage. Walking
the header and tensor index and comparing the end of the last tensor with the file
size catches it. This walker only skips over metadata values (the `gguf` package's
reader decodes all of them, ~100k tokens and merges, which takes seconds).
"""

from __future__ import annotations

import struct
from pathlib import Path

from engine.errors import EdgetuneError

MAGIC = b"GGUF"
# GGUF value type id -> fixed size in bytes (8 = string, 9 = array are variable)
_FIXED = {0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8}
STRING, ARRAY = 8, 9


class DamagedGguf(EdgetuneError):
    """The GGUF file is truncated or not a GGUF."""


class _Cursor:
    def __init__(self, f, size: int):
        self.f, self.size = f, size

    def read(self, n: int) -> bytes:
        b = self.f.read(n)
        if len(b) != n:
            raise EOFError
        return b

    def u32(self) -> int:
        return struct.unpack("<I", self.read(4))[0]

    def u64(self) -> int:
        return struct.unpack("<Q", self.read(8))[0]

    def string(self) -> str:
        n = self.u64()
        if n > self.size:
            raise EOFError
        return self.read(n).decode("utf-8", errors="replace")

    def skip_value(self, vtype: int):
        """Skip one value; returns it for small scalars/strings we care about."""
        if vtype in _FIXED:
            raw = self.read(_FIXED[vtype])
            return struct.unpack({1: "<B", 2: "<H", 4: "<I", 8: "<Q"}[len(raw)], raw)[0] if vtype in (0, 2, 4, 10) else None
        if vtype == STRING:
            return self.string()
        if vtype == ARRAY:
            sub, n = self.u32(), self.u64()
            if sub in _FIXED:
                self.f.seek(_FIXED[sub] * n, 1)
            else:
                for _ in range(n):
                    self.skip_value(sub)
            return None
        raise ValueError(f"unknown value type {vtype}")


def check_gguf(path: Path) -> dict:
    """Return {tensors, bytes, architecture} for a complete GGUF or raise DamagedGguf naming the problem."""
    import gguf

    path = Path(path)
    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            c = _Cursor(f, size)
            if c.read(4) != MAGIC:
                raise DamagedGguf(f"'{path}' is not a GGUF file (wrong magic bytes).")
            version = c.u32()
            n_tensors, n_kv = c.u64(), c.u64()
            alignment, arch = gguf.GGUF_DEFAULT_ALIGNMENT, "?"
            for _ in range(n_kv):
                key = c.string()
                value = c.skip_value(c.u32())
                if key == "general.alignment" and value:
                    alignment = int(value)
                elif key == "general.architecture":
                    arch = value
            end = 0
            for _ in range(n_tensors):
                c.string()
                dims = [c.u64() for _ in range(c.u32())]
                qtype, offset = c.u32(), c.u64()
                block, type_size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType(qtype)]
                count = 1
                for d in dims:
                    count *= d
                end = max(end, offset + count // block * type_size)
            data_start = -(-f.tell() // alignment) * alignment
    except DamagedGguf:
        raise
    except (EOFError, ValueError, KeyError, UnicodeDecodeError, struct.error) as e:
        raise DamagedGguf(f"'{path}' is not a complete GGUF file (its header is cut short or damaged: "
                          f"{type(e).__name__} {e}). Export or download it again.") from None
    if data_start + end > size:
        raise DamagedGguf(f"'{path}' is truncated: its tensors need {data_start + end} bytes, the file has {size}. "
                          f"Export or download it again.")
    return {"version": version, "tensors": n_tensors, "bytes": size, "architecture": arch}
