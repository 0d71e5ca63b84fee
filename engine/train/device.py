"""Pick the device and compute dtype: cuda > mps > cpu; bf16 where the hardware does it natively."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path


@dataclass(frozen=True)
class DeviceChoice:
    device: str  # "cuda" | "mps" | "cpu"
    dtype_name: str  # "bf16" | "fp16" | "fp32"
    reason: str

    @property
    def dtype(self):
        import torch

        return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[self.dtype_name]


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True when the CPU advertises AVX512-BF16 or AMX-BF16, where bf16 matmuls beat fp32.

    The one answer the trainer and the planner share (no torch, so `engine plan` can ask it too).
    oneDNN's own check also says yes on AVX512-BW CPUs, which only emulate bf16 (slower than fp32),
    so the CPU's flags decide. Where /proc/cpuinfo does not exist (macOS, Windows) the answer is
    no: fp32, the safe and equally planned choice.
    """
    try:
        flags = Path("/proc/cpuinfo").read_text(errors="ignore")
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def choose_device(compute_dtype: str = "auto", device: str = "auto") -> DeviceChoice:
    """Resolve `quant.compute_dtype` and the device; explicit values win over 'auto'."""
    import torch

    if device == "auto":
        if torch.cuda.is_available():
            device = "cuda"
        elif getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            device = "mps"
        else:
            device = "cpu"
    cuda_bf16 = device == "cuda" and torch.cuda.is_bf16_supported()
    name = dtype_for(compute_dtype, device, cuda_bf16)
    return DeviceChoice(device, name, REASONS.get((device, name), "set in the config") if compute_dtype == "auto" else "set in the config")


REASONS = {
    ("cuda", "bf16"): "GPU supports bf16", ("cuda", "fp16"): "GPU lacks bf16; fp16 with loss scaling",
    ("mps", "fp16"): "Apple GPU", ("cpu", "bf16"): "CPU has native bf16 (AVX512-BF16/AMX)",
    ("cpu", "fp32"): "CPU without native bf16: fp32 is faster than emulated bf16",
}


def dtype_for(requested: str, device: str, cuda_bf16: bool = True) -> str:
    """quant.compute_dtype resolved for a device (no torch: the planner asks this too).
    `cuda_bf16`: whether the GPU does bf16 (pre-Ampere ones use fp16, the same bytes)."""
    if requested != "auto":
        return requested
    if device == "cuda":
        return "bf16" if cuda_bf16 else "fp16"
    if device == "mps":
        return "fp16"
    return "bf16" if cpu_has_native_bf16() else "fp32"
