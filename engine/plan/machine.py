"""How much memory this machine offers a run, found without importing torch.

    detect_target("cuda")   # Target("cuda", "NVIDIA GeForce RTX 4060", 8.0) via nvidia-smi
    detect_target("cpu")    # Target("cpu", "this machine's RAM", <available GB>)
    detect_target()         # the device `engine train` would pick: cuda > mps > cpu

When torch is already imported (the trainer calls the planner after loading it) the CUDA
size comes from torch itself; otherwise from `nvidia-smi`, which ships with the driver.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from typing import Optional

from engine.plan.gpu_catalog import Target, apple_gpu_share

GIB = 2**30


def _meminfo_gb(key: str) -> Optional[float]:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024 / GIB
    except OSError:
        return None
    return None


def _own_rss_gb() -> float:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024 / GIB
    except OSError:
        pass
    return 0.0


def total_ram_gb() -> Optional[float]:
    """Physical RAM, or None when the platform does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB
    except (ValueError, OSError, AttributeError):
        return _meminfo_gb("MemTotal")


def cpu_memory_gb() -> Optional[float]:
    """RAM a CPU run can use: what the kernel calls available, plus what this process already holds
    (the estimate counts the process itself under framework overhead)."""
    available = _meminfo_gb("MemAvailable")
    if available is not None:
        return available + _own_rss_gb()
    return total_ram_gb()


def cuda_memory() -> Optional[tuple[str, float]]:
    """(name, total GB) of GPU 0, or None when there is no NVIDIA GPU to see."""
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            if torch.cuda.is_available():
                props = torch.cuda.get_device_properties(0)
                return props.name, props.total_memory / GIB
        except Exception:  # a broken driver must not break planning
            pass
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=10,
        )
        name, mib = out.stdout.strip().splitlines()[0].rsplit(",", 1)
        return name.strip(), float(mib) / 1024
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def is_apple_silicon() -> bool:
    return sys.platform == "darwin" and platform.machine() == "arm64"


def detect_target(device: Optional[str] = None) -> Target:
    """This machine as a planning target; `device` forces cuda/mps/cpu, None picks like the trainer."""
    if device in (None, "auto", "cuda"):
        found = cuda_memory()
        if found is not None:
            return Target("cuda", found[0], round(found[1], 2))
        if device == "cuda":
            # No GPU visible (planning on another machine): assume the most common gaming card.
            return Target("cuda", "unknown GPU (assumed 8 GB; pass --gpu or --vram)", 8.0)
    if device in (None, "auto", "mps") and is_apple_silicon():
        ram = total_ram_gb() or 16.0
        return Target("mps", f"Apple GPU (share of {ram:.0f} GB unified memory)", apple_gpu_share(ram))
    ram = cpu_memory_gb()
    if ram is None:
        return Target("cpu", "CPU (RAM unknown; assumed 8 GB, pass --gpu 'CPU 16GB')", 8.0)
    return Target("cpu", "this machine's available RAM", round(ram, 2))
