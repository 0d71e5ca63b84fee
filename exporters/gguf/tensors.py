"""Read an HF checkpoint one tensor at a time and plan each GGUF tensor's name, shape and type.

The plan is made from the safetensors headers alone: each architecture transform
runs on a data-less stand-in (a numpy array whose strides are all zero, so it holds
one element whatever its shape), so every output shape and byte size is known
before a single weight is read. The writer then streams: read one tensor, transform,
convert, write, drop. Peak memory is about one tensor, never the model, and the
conversion needs only numpy, not torch (the benchmark checks both).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

from engine.errors import EdgetuneError

FLOAT_DTYPES = {"F32", "F16", "BF16", "F64"}


@dataclass
class SourceTensor:
    name: str
    dtype: str          # safetensors dtype, e.g. 'BF16'
    shape: tuple
    file: Path
    begin: int = 0      # absolute byte range of the data in `file`
    end: int = 0


def _header(path: Path) -> tuple[dict, int]:
    """The safetensors JSON header and where the data starts."""
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            raise EdgetuneError(f"'{path}' is empty or truncated: not a safetensors file. Re-save the model.")
        (n,) = struct.unpack("<Q", raw)
        try:
            return json.loads(f.read(n)), 8 + n
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
            header, start = _header(f)
            size = f.stat().st_size
            for name, info in header.items():
                if name == "__metadata__":
                    continue
                b, e = info["data_offsets"]
                if start + e > size:
                    raise EdgetuneError(f"'{f}' is truncated ({name} lies past its end). Re-save or re-download it.")
                self.tensors[name] = SourceTensor(name, info["dtype"], tuple(info["shape"]), f, start + b, start + e)

    def __iter__(self) -> Iterator[SourceTensor]:
        return iter(self.tensors.values())

    def load(self, t: SourceTensor):
        """The tensor's data as float32 numpy, read with a plain file read.

        Not memory-mapped on purpose: pages of a mapped checkpoint stay resident after use, so
        peak memory would grow to the whole model; a read buffer is freed with the tensor.
        """
        import numpy as np

        with open(t.file, "rb") as f:
            f.seek(t.begin)
            buf = bytearray(t.end - t.begin)
            f.readinto(buf)
        if t.dtype == "BF16":  # bfloat16 is the top half of a float32: shift the bits into place
            return (np.frombuffer(buf, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32).reshape(t.shape)
        np_dtype = {"F32": np.float32, "F16": np.float16, "F64": np.float64}[t.dtype]
        return np.frombuffer(buf, dtype=np_dtype).reshape(t.shape).astype(np.float32, copy=False)

    def close(self) -> None:
        """Nothing stays open between tensors (kept for symmetry with other sources)."""

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


def shape_only(shape: tuple):
    """A read-only float32 array of `shape` that owns one element (all strides zero): for planning."""
    import numpy as np

    return np.broadcast_to(np.zeros((), dtype=np.float32), tuple(shape))


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
    """float array -> numpy array in the storage type (quantised types as uint8 rows)."""
    import gguf
    import numpy as np

    T = gguf.GGMLQuantizationType
    data = np.ascontiguousarray(tensor)
    if qtype == T.F32:
        return data.astype(np.float32, copy=False)
    if qtype == T.F16:
        return data.astype(np.float16, copy=False)
    # Quantise a few rows at a time: gguf.quants makes several full-size float temporaries,
    # which for a big embedding would cost several times the tensor; per block of rows it is small.
    data = data.astype(np.float32, copy=False)
    rows = data.reshape(-1, data.shape[-1])
    out = np.empty(gguf.quants.quant_shape_to_byte_shape(rows.shape, qtype), dtype=np.uint8)
    step = max(1, (1 << 22) // rows.shape[1])  # ~16 MB of float32 per block
    for i in range(0, rows.shape[0], step):
        out[i:i + step] = gguf.quants.quantize(rows[i:i + step], qtype)
    return out.reshape(gguf.quants.quant_shape_to_byte_shape(data.shape, qtype))
