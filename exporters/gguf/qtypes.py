"""The GGUF output types: which are written directly, which come from llama.cpp's quantizer.

The names users type come from engine.config.quant_types (shared with the run
config); this module adds what the exporter needs per type: the llama.cpp file type
id (general.file_type, and the `ftype` of llama_model_quantize) and a bits-per-weight
figure for size estimates before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.config.quant_types import DIRECT_TYPES, GGUF_TYPES, LLAMA_QUANT_TYPES
from engine.errors import EdgetuneError


@dataclass(frozen=True)
class GgufType:
    name: str
    direct: bool           # written by our converter (else: llama.cpp's quantizer)
    ftype: int             # llama_ftype / gguf.LlamaFileType value
    bits_per_weight: float  # average over a typical model, for size estimates


# name -> (llama_ftype, bits per weight). ftype ids are llama.cpp's enum llama_ftype; the
# bits include block scales (e.g. q8_0: 32 int8 + one f16 scale = 8.5 bits).
_TABLE = {
    "f32": (0, 32.0), "f16": (1, 16.0), "bf16": (32, 16.0), "q8_0": (7, 8.5),
    "q4_0": (2, 4.5), "q4_1": (3, 5.0), "q5_0": (8, 5.5), "q5_1": (9, 6.0),
    "q2_k": (10, 3.35), "q3_k_m": (12, 3.9), "q4_k_s": (14, 4.6), "q4_k_m": (15, 4.9),
    "q5_k_s": (16, 5.5), "q5_k_m": (17, 5.7), "q6_k": (18, 6.6),
}
assert set(_TABLE) == set(DIRECT_TYPES) | set(LLAMA_QUANT_TYPES)

TYPES = {name: GgufType(name, name in DIRECT_TYPES, ftype, bpw) for name, (ftype, bpw) in _TABLE.items()}


def gguf_type(name: str) -> GgufType:
    """The GgufType for a user-typed name (case-insensitive), or an error listing the valid ones."""
    key = str(name).strip().lower()
    if key not in TYPES:
        raise EdgetuneError(f"Unknown GGUF type '{name}'. Choose from: {', '.join(GGUF_TYPES)}.")
    return TYPES[key]


def parse_quant_list(text: str) -> list[str]:
    """'q8_0,q4_k_m,f16' -> ['q8_0', 'q4_k_m', 'f16'] (validated, duplicates dropped, 'auto' kept)."""
    out = []
    for part in str(text).split(","):
        part = part.strip().lower()
        if not part:
            continue
        if part != "auto":
            gguf_type(part)
        if part not in out:
            out.append(part)
    if not out:
        raise EdgetuneError(f"--quant is empty. Choose from: {', '.join(GGUF_TYPES)}.")
    return out
