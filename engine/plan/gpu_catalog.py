"""Memory of the machines people train on: consumer GPUs, Apple unified memory, plain CPUs.

    parse_target("RTX 4060")            -> Target("cuda", "NVIDIA GeForce RTX 4060", 8.0)
    parse_target("RTX 4060 Ti 16GB")    -> the 16 GB variant
    parse_target("Apple M2 16GB")       -> Target("mps", ..., 10.7)  (the GPU's share of unified memory)
    parse_target("CPU 32GB")            -> Target("cpu", "CPU with 32 GB RAM", 32.0)

Sizes are in GB as the vendors sell them, which are binary gigabytes (an "8 GB" card has
8192 MiB), so the planner counts GB = 2**30 bytes throughout.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from engine.errors import EdgetuneError

# normalised name -> (display name, VRAM GB). Variants sold with more memory are chosen by
# adding the size to the name ("RTX 3060 8GB", "RTX 4060 Ti 16GB").
GPUS: dict[str, tuple[str, float]] = {}


def _add(vendor: str, names: str, gb: float) -> None:
    for name in names.split(","):
        name = name.strip()
        GPUS[_norm(name)] = (f"{vendor} {name}", gb)


def _norm(text: str) -> str:
    text = text.lower()
    text = re.sub(r"\b(nvidia|geforce|amd|radeon|intel|arc|graphics|gpu|card)\b", " ", text)
    return re.sub(r"[^a-z0-9]", "", text)


# GeForce 10/16 series (no bf16: training runs in fp16)
_add("NVIDIA GeForce", "GTX 1060", 6)
_add("NVIDIA GeForce", "GTX 1070, GTX 1070 Ti, GTX 1080", 8)
_add("NVIDIA GeForce", "GTX 1080 Ti", 11)
_add("NVIDIA GeForce", "GTX 1650", 4)
_add("NVIDIA GeForce", "GTX 1660, GTX 1660 Super, GTX 1660 Ti", 6)
# GeForce 20 series
_add("NVIDIA GeForce", "RTX 2060", 6)
_add("NVIDIA GeForce", "RTX 2060 Super, RTX 2070, RTX 2070 Super, RTX 2080, RTX 2080 Super", 8)
_add("NVIDIA GeForce", "RTX 2080 Ti", 11)
_add("NVIDIA", "Titan RTX", 24)
# GeForce 30 series
_add("NVIDIA GeForce", "RTX 3050", 8)
_add("NVIDIA GeForce", "RTX 3060", 12)
_add("NVIDIA GeForce", "RTX 3060 Ti, RTX 3070, RTX 3070 Ti", 8)
_add("NVIDIA GeForce", "RTX 3080", 10)
_add("NVIDIA GeForce", "RTX 3080 Ti", 12)
_add("NVIDIA GeForce", "RTX 3090, RTX 3090 Ti", 24)
# GeForce 40 series
_add("NVIDIA GeForce", "RTX 4060, RTX 4060 Ti", 8)
_add("NVIDIA GeForce", "RTX 4070, RTX 4070 Super, RTX 4070 Ti", 12)
_add("NVIDIA GeForce", "RTX 4070 Ti Super, RTX 4080, RTX 4080 Super", 16)
_add("NVIDIA GeForce", "RTX 4090", 24)
# GeForce 50 series
_add("NVIDIA GeForce", "RTX 5050, RTX 5060, RTX 5060 Ti", 8)
_add("NVIDIA GeForce", "RTX 5070", 12)
_add("NVIDIA GeForce", "RTX 5070 Ti, RTX 5080", 16)
_add("NVIDIA GeForce", "RTX 5090", 32)
# Laptop GPUs (less memory than the desktop part of the same name)
_add("NVIDIA GeForce", "RTX 3050 Laptop, RTX 4050 Laptop", 6)
_add("NVIDIA GeForce", "RTX 3060 Laptop", 6)
_add("NVIDIA GeForce", "RTX 3070 Laptop, RTX 4060 Laptop, RTX 4070 Laptop, RTX 5060 Laptop, RTX 5070 Laptop", 8)
_add("NVIDIA GeForce", "RTX 3080 Laptop, RTX 4080 Laptop", 12)
_add("NVIDIA GeForce", "RTX 4090 Laptop, RTX 5080 Laptop", 16)
_add("NVIDIA GeForce", "RTX 5090 Laptop", 24)
# Workstation and cloud GPUs people rent for a run
_add("NVIDIA", "T4, V100, RTX A4000, RTX 4000 Ada", 16)
_add("NVIDIA", "A10, A10G, L4, RTX A5000", 24)
_add("NVIDIA", "RTX A6000, RTX 6000 Ada, L40S, A40", 48)
_add("NVIDIA", "A100 40GB", 40)
_add("NVIDIA", "A100, A100 80GB, H100", 80)
# AMD Radeon (ROCm)
_add("AMD Radeon", "RX 6700 XT, RX 7700 XT", 12)
_add("AMD Radeon", "RX 6800, RX 6800 XT, RX 6900 XT, RX 7800 XT, RX 9070, RX 9070 XT", 16)
_add("AMD Radeon", "RX 7600, RX 9060 XT", 8)
_add("AMD Radeon", "RX 7900 GRE", 16)
_add("AMD Radeon", "RX 7900 XT", 20)
_add("AMD Radeon", "RX 7900 XTX", 24)


@dataclass(frozen=True)
class Target:
    """Where a run will train: the device kind, a display name and the memory it may use (GB)."""

    device: str  # "cuda" | "mps" | "cpu"
    name: str
    memory_gb: float


def apple_gpu_share(unified_gb: float) -> float:
    """GPU-usable part of Apple unified memory.

    Metal's recommendedMaxWorkingSetSize is about two thirds of RAM on small Macs and about
    three quarters on 36 GB and up; the rest stays with macOS and the other apps.
    """
    return round(unified_gb * (0.75 if unified_gb >= 36 else 0.67), 1)


def _size_in(text: str) -> float | None:
    m = re.search(r"(\d+(?:\.\d+)?)\s*(gb|gib|g)\b", text.lower())
    return float(m.group(1)) if m else None


def parse_target(text: str) -> Target:
    """A --gpu value: a GPU name (optionally with its size), 'Apple M2 16GB' or 'CPU 32GB'."""
    raw = text.strip()
    size = _size_in(raw)
    low = raw.lower()
    if re.match(r"^cpu\b", low):
        if size is None:
            raise EdgetuneError(f"--gpu '{raw}': say how much RAM the CPU machine has, e.g. --gpu 'CPU 16GB'.")
        return Target("cpu", f"CPU with {size:g} GB RAM", size)
    if re.search(r"\b(apple|mac|macbook|m[1-5])\b", low):
        if size is None:
            raise EdgetuneError(f"--gpu '{raw}': say how much unified memory the Mac has, e.g. --gpu 'Apple M2 16GB'.")
        return Target("mps", f"{raw} (GPU share of {size:g} GB unified memory)", apple_gpu_share(size))
    key = _norm(re.sub(r"(\d+(?:\.\d+)?)\s*(gb|gib|g)\b", " ", raw, flags=re.I))
    if key in GPUS:
        name, gb = GPUS[key]
        if size is not None:
            name, gb = f"{name} {size:g}GB", size
        return Target("cuda", name, gb)
    if size is not None and key in ("", "vram"):
        return Target("cuda", f"GPU with {size:g} GB", size)
    close = difflib.get_close_matches(key, list(GPUS), n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(GPUS[c][0] for c in close)}?" if close else ""
    raise EdgetuneError(
        f"GPU '{raw}' is not in the planner's catalog.{hint} Give its memory instead with --vram GB "
        f"(e.g. --vram 8), or name a catalog GPU such as 'RTX 4060', 'RTX 3090', 'Apple M2 16GB' or 'CPU 32GB'."
    )


def known_gpus() -> list[str]:
    """Display names of every catalog GPU with its memory."""
    return [f"{name} ({gb:g} GB)" for name, gb in GPUS.values()]
