"""Keep CPU training's resident memory equal to its live tensors (Linux, glibc).

glibc's malloc serves blocks above M_MMAP_THRESHOLD (128 KiB at start) with their own mmap
and returns them to the OS on free. But each time such a block is freed it raises the
threshold to that block's size (up to 32 MiB), so from the second training step on, the
activations of a step (0.1-30 MB each) come from the heap, where freed blocks are kept and
fragment. Measured on SmolLM2-135M LoRA (benchmarks/plan_accuracy.py, 2 cores): the memory a
training step adds on top of the model plateaus at 2.0-2.5x its live tensors with the default,
and at 1.0x with the threshold pinned, e.g. +1.80 GB vs +0.74 GB for batch 4 x 256 with
checkpointing.

Setting the threshold (as `MALLOC_MMAP_THRESHOLD_=131072` in the environment would) turns
the dynamic adjustment off. The planner's CPU figures assume the trainer calls
`pin_malloc_threshold()` once at start, before loading the model.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_MMAP_THRESHOLD = -3  # from <malloc.h>
DEFAULT_THRESHOLD = 128 * 1024  # glibc's own starting value; pinning it only stops the growth


def pin_malloc_threshold(threshold: int = DEFAULT_THRESHOLD) -> bool:
    """Pin glibc's mmap threshold; True when applied (Linux with glibc), False elsewhere (no-op)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl or an unusual libc: nothing to pin
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return mallopt(M_MMAP_THRESHOLD, int(threshold)) == 1
