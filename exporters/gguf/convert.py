"""HF folder -> GGUF file in f32, f16, bf16 or q8_0, written by us with the `gguf` package.

    from exporters.gguf.convert import convert_hf_to_gguf
    result = convert_hf_to_gguf(model_dir, "model-f16.gguf", "f16")

Order of work: read config.json and pick the architecture (unknown -> error listing
the supported ones); read the tokenizer; plan every tensor from the safetensors
headers; write header, metadata and tensor index; stream the tensor data one at a
time; read the file back to check it is complete; rename it into place.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from engine.errors import EdgetuneError
from exporters.gguf.qtypes import gguf_type

Progress = Callable[[str, float], None]  # (stage, fraction 0..1)


@dataclass
class ConvertResult:
    path: Path
    out_type: str
    n_tensors: int
    n_params: int
    bytes: int
    seconds: float
    architecture: str
    vocab_kind: str
    pre_tokenizer: Optional[str]


def read_config(model_dir: Path) -> dict:
    """config.json of an HF folder, with a clear error when it is missing or broken."""
    path = Path(model_dir) / "config.json"
    if not path.is_file():
        raise EdgetuneError(f"'{model_dir}' has no config.json: it is not a Hugging Face model folder.")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:
        raise EdgetuneError(f"{path} is not valid JSON ({e}). Re-save the model.") from None


def _check_quantization(config: dict, model_dir: Path) -> None:
    qc = config.get("quantization_config") or {}
    method = qc.get("quant_method")
    # 'gguf' is left behind when a model was imported from a GGUF and saved de-quantised: the
    # safetensors then hold plain floats (checked per tensor by SafetensorsSource.check_float).
    if method and method != "gguf":
        raise EdgetuneError(
            f"'{model_dir}' is quantised with {method}; llama.cpp needs the 16-bit weights. For a QLoRA run "
            f"export the run folder (its merged/ model is de-quantised), or merge it first with `engine merge`."
        )


class GgufConverter:
    """Plans and writes one GGUF from an HF folder."""

    def __init__(self, model_dir: Path, pre_tokenizer: Optional[str] = None, metadata: Optional[dict] = None):
        from exporters.gguf.registry import architecture_for
        from exporters.gguf.tensors import SafetensorsSource
        from exporters.gguf.vocab import read_vocab_isolated

        self.model_dir = Path(model_dir)
        self.config = read_config(self.model_dir)
        _check_quantization(self.config, self.model_dir)
        self.arch = architecture_for(self.config, self.model_dir)
        self.source = SafetensorsSource(self.model_dir)
        self.source.check_float()
        n_vocab = int(self.arch.hp("vocab_size"))
        self.vocab, self.turns = read_vocab_isolated(self.model_dir, n_vocab, pre_tokenizer)
        self._hf_tokenizer = None
        if hasattr(self.arch, "n_vocab_tokens"):
            self.arch.n_vocab_tokens = len(self.vocab.tokens)
        self.metadata = metadata or {}

    @property
    def hf_tokenizer(self):
        """The HF tokenizer (loaded on first use: it brings in transformers)."""
        if self._hf_tokenizer is None:
            from exporters.gguf.vocab import load_hf_tokenizer

            self._hf_tokenizer = load_hf_tokenizer(self.model_dir)
        return self._hf_tokenizer

    # ---- planning -------------------------------------------------------------------
    def plan(self, out_type: str) -> list:
        """Every GGUF tensor with name, shape, type and size, from the headers only."""
        from exporters.gguf.tensors import PlannedTensor, nbytes_of, shape_only, storage_type

        planned, seen = [], set()
        for st in self.source:
            if self.arch.skip(st.name):
                continue
            for name, t in self.arch.transform(st.name, shape_only(st.shape)):
                shape = tuple(t.shape)
                qtype = storage_type(name, shape, out_type)
                planned.append(PlannedTensor(name, shape, qtype, nbytes_of(shape, qtype), st.name))
                seen.add(name)
        for name, t in self.arch.extra_tensors():
            shape = tuple(t.shape)
            qtype = storage_type(name, shape, out_type)
            planned.append(PlannedTensor(name, shape, qtype, nbytes_of(shape, qtype), None))
        if "token_embd.weight" not in seen:
            raise EdgetuneError(f"'{self.model_dir}' has no token embedding tensor: the checkpoint is incomplete.")
        return planned

    def estimate_bytes(self, out_type: str) -> int:
        """Size of the output file (tensor data plus an allowance for the vocabulary)."""
        return sum(p.nbytes for p in self.plan(out_type)) + 64 * len(self.vocab.tokens) + (1 << 20)

    # ---- writing --------------------------------------------------------------------
    def _write_metadata(self, w, out_type: str, n_params: int) -> None:
        import gguf

        from exporters.gguf.metadata import write_general

        w.add_type(gguf.GGUFType.MODEL)
        write_general(w, self.model_dir, self.config, n_params, self.metadata)
        self.arch.write_hparams(w)
        w.add_file_type(gguf_type(out_type).ftype)
        w.add_quantization_version(gguf.GGML_QUANT_VERSION)
        self.vocab.write(w)

    def write(self, path: Path, out_type: str, progress: Optional[Progress] = None) -> ConvertResult:
        """Write the GGUF to `path` (the caller makes it atomic); returns what was written."""
        import gguf
        import numpy as np

        from exporters.gguf.tensors import to_storage

        start = time.perf_counter()
        plan = self.plan(out_type)
        total = sum(p.nbytes for p in plan) or 1
        n_params = sum(int(np.prod(p.shape)) for p in plan)
        w = gguf.GGUFWriter(str(path), self.arch.arch_name)
        try:
            self._write_metadata(w, out_type, n_params)
            for p in plan:
                w.add_tensor_info(p.gguf_name, p.shape, np.dtype(np.float32), p.nbytes, raw_dtype=p.qtype)
            w.write_header_to_file()
            w.write_kv_data_to_file()
            w.write_ti_data_to_file()
            done = 0
            by_source: dict = {}
            for p in plan:
                by_source.setdefault(p.source, []).append(p)
            for name, group in by_source.items():
                if name is None:
                    outputs = list(self.arch.extra_tensors())
                else:
                    outputs = list(self.arch.transform(name, self.source.load(self.source.tensors[name])))
                for p, (out_name, t) in zip(group, outputs):
                    assert out_name == p.gguf_name and tuple(t.shape) == p.shape, (out_name, p.gguf_name)
                    arr = to_storage(t, p.qtype)
                    if arr.nbytes != p.nbytes:
                        raise RuntimeError(f"{p.gguf_name}: planned {p.nbytes} bytes, got {arr.nbytes}")
                    w.write_tensor_data(arr)
                    done += p.nbytes
                    if progress:
                        progress(f"writing {out_type}", done / total)
                del outputs
            w.flush()
        finally:
            w.close()
            self.source.close()
        return ConvertResult(Path(path), out_type, len(plan), n_params, Path(path).stat().st_size,
                             time.perf_counter() - start, self.arch.arch_name, self.vocab.kind, self.vocab.pre)


def convert_hf_to_gguf(model_dir: Path, out_path: Path, out_type: str = "f16", progress: Optional[Progress] = None,
                       pre_tokenizer: Optional[str] = None, metadata: Optional[dict] = None) -> ConvertResult:
    """Convert an HF folder to one GGUF file of a direct type, safely (temp file, check, rename)."""
    from engine.formats.gguf_integrity import check_gguf
    from exporters.safe_write import atomic_path, check_free_space

    spec = gguf_type(out_type)
    if not spec.direct:
        raise EdgetuneError(f"'{out_type}' is made by llama.cpp's quantizer, not written directly; use GgufExporter.")
    conv = GgufConverter(model_dir, pre_tokenizer, metadata)
    out_path = Path(out_path)
    check_free_space(out_path.parent, conv.estimate_bytes(out_type), f"the {out_type} GGUF")
    with atomic_path(out_path) as tmp:
        result = conv.write(tmp, out_type, progress)
        check_gguf(tmp)
    result.path = out_path
    return result
