"""Pick the device and compute dtype: cuda > mps > cpu; bf16 where the hardware does it natively."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DeviceChoice:
    device: str  # "cuda" | "mps" | "cpu"
    dtype_name: str  # "bf16" | "fp16" | "fp32"
    reason: str

    @property
    def dtype(self):
        import torch

        return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[self.dtype_name]


def cpu_has_native_bf16() -> bool:
    """True on CPUs with AVX512-BF16/AMX, where bf16 matmuls beat fp32; emulated bf16 is slower."""
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except Exception:
        return False


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
    if compute_dtype != "auto":
        return DeviceChoice(device, compute_dtype, "set in the config")
    if device == "cuda":
        if torch.cuda.is_bf16_supported():
            return DeviceChoice(device, "bf16", "GPU supports bf16")
        return DeviceChoice(device, "fp16", "GPU lacks bf16; fp16 with loss scaling")
    if device == "mps":
        return DeviceChoice(device, "fp16", "Apple GPU")
    if cpu_has_native_bf16():
        return DeviceChoice(device, "bf16", "CPU has native bf16 (AVX512-BF16/AMX)")
    return DeviceChoice(device, "fp32", "CPU without native bf16: fp32 is faster than emulated bf16")
