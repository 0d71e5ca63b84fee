"""The machine the run will train on, found without importing torch.

The Method & fit page shows it and passes its memory to `engine plan` so the
verdict is about this machine. nvidia-smi / rocm-smi answer in milliseconds and
need no CUDA libraries in our process; without a GPU the run trains on the CPU
and system RAM is what must fit.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from dataclasses import dataclass
from typing import Optional


@dataclass
class Device:
    """Where training will run: `kind` is cuda, rocm, mps or cpu."""

    kind: str
    name: str
    memory_gb: Optional[float]

    def describe(self) -> str:
        mem = f", {self.memory_gb:.0f} GB" if self.memory_gb else ""
        return f"{self.name}{mem}"


def system_ram_gb() -> Optional[float]:
    """Physical RAM in GB, or None where the OS does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    except (ValueError, OSError, AttributeError):
        return None


def _run(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=5, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def _nvidia() -> Optional[Device]:
    if not shutil.which("nvidia-smi"):
        return None
    out = _run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"])
    for line in out.splitlines():
        name, _, mib = line.partition(",")
        try:
            return Device("cuda", name.strip(), float(mib) / 1024)
        except ValueError:
            continue
    return None


def _rocm() -> Optional[Device]:
    if not shutil.which("rocm-smi"):
        return None
    out = _run(["rocm-smi", "--showproductname", "--showmeminfo", "vram", "--csv"])
    lines = [l for l in out.splitlines() if l and not l.startswith("device")]
    for line in lines:
        cells = [c.strip() for c in line.split(",")]
        total = next((c for c in cells if c.isdigit() and int(c) > 1 << 30), None)
        if total:
            return Device("rocm", "AMD GPU", int(total) / 2**30)
    return None


def _apple() -> Optional[Device]:
    if platform.system() == "Darwin" and platform.machine() == "arm64":
        return Device("mps", "Apple silicon (unified memory)", system_ram_gb())
    return None


# Tried in order; the first that finds something wins.
DETECTORS = [_nvidia, _rocm, _apple]


def detect_device() -> Device:
    """The first GPU found, else the CPU with its RAM."""
    for detect in DETECTORS:
        dev = detect()
        if dev is not None:
            return dev
    cores = os.cpu_count() or 1
    return Device("cpu", f"CPU ({cores} cores, no GPU found)", system_ram_gb())
