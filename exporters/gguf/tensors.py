"""Read an HF checkpoint one tensor at a time and plan each GGUF tensor's name, shape and type.

The plan is made from the safetensors headers alone: each architecture transform
runs on a torch 'meta' tensor (shape only, no data), so every output shape and byte
size is known before a single weight is read. The writer then streams: load one
tensor, transform, convert, write, drop. Peak memory is about one tensor, never the
model (the benchmark checks it).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

from engine.errors import EdgetuneError

# safetensors dtype name -> torch dtype name
_ST_DTYPES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64",
              "I8": "int8", "U8": "uint8", "I16": "int16", "I32": "int32", "I64": "int64", "BOOL": "bool",
              "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2"}
FLOAT_DTYPES = {"F32", "F16", "BF16", "F64"}


@dataclass
class SourceTensor:
    name: str
    dtype: str          # safetensors dtype, e.g. 'BF16'
    shape: tuple
    file: Path


def _header(path: Path) -> dict:
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            raise EdgetuneError(f"'{path}' is empty or truncated: not a safetensors file. Re-save the model.")
        (n,) = struct.unpack("<Q", raw)
        try:
            return json.loads(f.read(n))
        except ValueError:
            raise EdgetuneError(f"'{path}' has a damaged safetensors header. Re-save the model.") from None


class SafetensorsSource:
    """The tensors of an HF folder (single file or sharded), read lazily."""

    def __init__(self, model_dir: Path):
        self.model_dir = Path(model_dir)
        files = sorted(self.model_dir.glob("*.safetensors"))
        if not files:
            bins = sorted(self.model_dir.glob("pytorch_model*.bin"))
            hint = (" It holds PyTorch .bin weights: re-save them with "
                    "`AutoModelForCausalLM.from_pretrained(dir).save_pretrained(dir, safe_serialization=True)`.") if bins else ""
            raise EdgetuneError(f"'{self.model_dir}' has no *.safetensors weights.{hint}")
        self.tensors: dict[str, SourceTensor] = {}
        for f in files:
            for name, info in _header(f).items():
                if name == "__metadata__":
                    continue
                self.tensors[name] = SourceTensor(name, info["dtype"], tuple(info["shape"]), f)
        self._open: dict[Path, object] = {}

    def __iter__(self) -> Iterator[SourceTensor]:
        return iter(self.tensors.values())

    def meta(self, t: SourceTensor):
        """A data-less torch tensor of the same shape and dtype."""
        import torch

        return torch.empty(t.shape, dtype=getattr(torch, _ST_DTYPES.get(t.dtype, "float32")), device="meta")

    def load(self, t: SourceTensor):
        """The tensor's data (memory-mapped read of this one tensor)."""
        from safetensors import safe_open

        if t.file not in self._open:
            self._open[t.file] = safe_open(str(t.file), framework="pt")
        return self._open[t.file].get_tensor(t.name)

    def close(self) -> None:
        self._open.clear()

    def float_param_count(self) -> int:
        n = 0
        for t in self.tensors.values():
            size = 1
            for d in t.shape:
                size *= d
            n += size
        return n

    def check_float(self) -> None:
        """Quantised checkpoints (bitsandbytes, GPTQ, AWQ) must be merged/de-quantised first."""
        bad = [t.name for t in self.tensors.values() if t.dtype not in FLOAT_DTYPES]
        if bad:
            raise EdgetuneError(
                f"'{self.model_dir}' stores quantised or integer weights ({bad[0]} is {self.tensors[bad[0]].dtype}). "
                f"Export a 16-bit model: for a QLoRA run use its merged/ folder (`engine merge RUN`), which "
                f"de-quantises the base before merging."
            )


@dataclass
class PlannedTensor:
    """One GGUF tensor: where it comes from and how it is stored."""

    gguf_name: str
    shape: tuple          # torch (row-major) order
    qtype: object         # gguf.GGMLQuantizationType
    nbytes: int
    source: Optional[str]  # HF tensor name; None for a generated tensor


def storage_type(gguf_name: str, shape: tuple, out_type: str):
    """The GGML type a tensor is stored as for an output type (the rules llama.cpp expects).

    Norms, biases and 1-D tensors stay F32 (llama.cpp's kernels for them are F32);
    Q8_0 needs rows that split into blocks of 32, else the tensor falls back to F16.
    """
    import gguf

    T = gguf.GGMLQuantizationType
    if len(shape) <= 1 or gguf_name.endswith("_norm.weight") or not gguf_name.endswith(".weight"):
        return T.F32
    if out_type == "f32":
        return T.F32
    if out_type == "bf16":
        return T.BF16
    if out_type == "q8_0":
        block, _ = gguf.GGML_QUANT_SIZES[T.Q8_0]
        return T.Q8_0 if shape[-1] % block == 0 else T.F16
    return T.F16


def nbytes_of(shape: tuple, qtype) -> int:
    import gguf

    block, type_size = gguf.GGML_QUANT_SIZES[qtype]
    n = 1
    for d in shape:
        n *= d
    return n // block * type_size


def to_storage(tensor, qtype):
    """torch tensor -> numpy array in the storage type (quantised types as uint8 rows)."""
    import gguf
    import numpy as np
    import torch

    T = gguf.GGMLQuantizationType
    if tensor.dtype not in (torch.float16, torch.float32):
        tensor = tensor.to(torch.float32)
    data = tensor.contiguous().numpy()
    if qtype == T.F32:
        return data.astype(np.float32, copy=False)
    if qtype == T.F16:
        return data.astype(np.float16, copy=False)
    return gguf.quants.quantize(data.astype(np.float32, copy=False), qtype)
