"""The architecture registry: one small class per model family, found by the HF class name.

    @register_architecture("LlamaForCausalLM", "MistralForCausalLM")
    class LlamaArchitecture(Architecture):
        gguf_arch = gguf.MODEL_ARCH.LLAMA
        def transform(self, name, tensor): ...   # e.g. the rotary Q/K row order

An architecture turns an HF `config.json` into GGUF hyper-parameters and each
HF tensor into zero or more GGUF tensors. The defaults here cover what every
decoder-only family shares (tensor names come from the `gguf` package's name
maps); a family file overrides only what differs. `architecture_for` fails with
the list of supported families, so a new one is one new file in archs/.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Iterable, Iterator

from engine.errors import EdgetuneError

# HF class name (config.json "architectures") -> Architecture subclass
ARCHITECTURES: dict[str, type["Architecture"]] = {}


class UnsupportedArchitecture(EdgetuneError):
    """The model's architecture has no GGUF converter here."""


def register_architecture(*hf_names: str) -> Callable[[type], type]:
    """Decorator: make an Architecture subclass the converter for these HF class names."""

    def deco(cls: type) -> type:
        for name in hf_names:
            ARCHITECTURES[name] = cls
        cls.hf_names = tuple(hf_names)
        return cls

    return deco


def supported_architectures() -> list[str]:
    """Every HF class name a converter is registered for (after importing the family files)."""
    import exporters.gguf.archs  # noqa: F401  (registers the families)

    return sorted(ARCHITECTURES)


def architecture_for(config: dict, model_dir: Path) -> "Architecture":
    """The converter for an HF config dict; an unknown architecture names the supported ones."""
    known = supported_architectures()
    names = config.get("architectures") or []
    for name in names:
        if name in ARCHITECTURES:
            arch = ARCHITECTURES[name](config, Path(model_dir), name)
            arch.check()
            return arch
    what = ", ".join(names) if names else f"model_type={config.get('model_type')!r} (config.json has no 'architectures')"
    raise UnsupportedArchitecture(
        f"GGUF export does not support the architecture {what} of '{model_dir}'. Supported: {', '.join(known)}. "
        f"Export it to ONNX instead (`engine export onnx`), or add a converter file under exporters/gguf/archs/."
    )


class Architecture:
    """How one model family maps to GGUF. Subclasses set `gguf_arch` and override hooks."""

    gguf_arch = None  # a gguf.MODEL_ARCH member
    hf_names: tuple = ()
    # LLama-style tied models carry no lm_head; if the file still has one and the config
    # says tied, llama.cpp would read it as a separate output matrix, so we drop it.
    drop_tied_lm_head = True

    def __init__(self, config: dict, model_dir: Path, hf_name: str):
        # Multimodal configs nest the language model; its keys win (as llama.cpp does).
        self.config = {**config, **config.get("text_config", {})}
        self.model_dir = model_dir
        self.hf_name = hf_name
        import gguf

        self.n_layers = int(self.hp("num_hidden_layers"))
        self.name_map = gguf.get_tensor_name_map(self.gguf_arch, self.n_layers)

    # ---- config helpers -------------------------------------------------------------
    @property
    def arch_name(self) -> str:
        """The GGUF architecture string, e.g. 'llama'."""
        import gguf

        return gguf.MODEL_ARCH_NAMES[self.gguf_arch]

    def hp(self, key: str, default=None):
        """A hyper-parameter from config.json (None-valued keys count as missing)."""
        value = self.config.get(key)
        return default if value is None else value

    @property
    def n_head(self) -> int:
        return int(self.hp("num_attention_heads"))

    @property
    def n_head_kv(self) -> int:
        return int(self.hp("num_key_value_heads", self.n_head))

    @property
    def head_dim(self) -> int:
        return int(self.hp("head_dim", self.hp("hidden_size") // self.n_head))

    def rope(self, layer_type: str = "full_attention") -> dict:
        """Rope settings in one shape for old (rope_theta + rope_scaling) and new (rope_parameters) configs."""
        params = self.config.get("rope_parameters") or {}
        if layer_type in params and isinstance(params[layer_type], dict):
            params = params[layer_type]
        elif "full_attention" in params and isinstance(params["full_attention"], dict):
            params = params["full_attention"]
        merged = dict(self.config.get("rope_scaling") or {})
        merged.update(params)
        if "rope_theta" not in merged and self.config.get("rope_theta") is not None:
            merged["rope_theta"] = self.config["rope_theta"]
        if "rope_type" not in merged and "type" in merged:
            merged["rope_type"] = merged["type"]
        return merged

    @property
    def tied(self) -> bool:
        return bool(self.config.get("tie_word_embeddings", False))

    # ---- hooks ----------------------------------------------------------------------
    def check(self) -> None:
        """Raise EdgetuneError for settings llama.cpp cannot represent (called once)."""
        self._check_rope_type({"default", "linear", "yarn", "llama3"})

    def _check_rope_type(self, allowed: set) -> None:
        rope_type = str(self.rope().get("rope_type") or "default").lower()
        if rope_type not in allowed:
            raise UnsupportedArchitecture(
                f"{self.hf_name} with rope_type={rope_type!r} cannot be exported to GGUF here "
                f"(supported for this family: {', '.join(sorted(allowed))})."
            )

    def write_hparams(self, w) -> None:
        """Architecture hyper-parameters (the llama-style set most families share)."""
        import gguf

        w.add_block_count(self.n_layers)
        w.add_context_length(int(self.hp("max_position_embeddings")))
        w.add_embedding_length(int(self.hp("hidden_size")))
        w.add_feed_forward_length(int(self.hp("intermediate_size")))
        w.add_head_count(self.n_head)
        w.add_head_count_kv(self.n_head_kv)
        w.add_layer_norm_rms_eps(float(self.hp("rms_norm_eps", 1e-6)))
        w.add_key_length(self.head_dim)
        w.add_value_length(self.head_dim)
        w.add_vocab_size(int(self.hp("vocab_size")))
        rope = self.rope()
        w.add_rope_freq_base(float(rope.get("rope_theta", 10000.0)))
        w.add_rope_dimension_count(self.rope_dimension_count())
        rope_type = str(rope.get("rope_type") or "default").lower()
        factor = rope.get("factor")
        if rope_type == "linear" and factor:
            w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
            w.add_rope_scaling_factor(float(factor))
        elif rope_type == "yarn" and factor:
            w.add_rope_scaling_type(gguf.RopeScalingType.YARN)
            w.add_rope_scaling_factor(float(factor))
            w.add_rope_scaling_orig_ctx_len(int(rope["original_max_position_embeddings"]))

    def rope_dimension_count(self) -> int:
        """How many dimensions of each head are rotated."""
        return int(self.head_dim * float(self.rope().get("partial_rotary_factor", 1.0)))

    def skip(self, name: str) -> bool:
        """True for HF tensors that have no GGUF counterpart."""
        if name.endswith("rotary_emb.inv_freq"):
            return True
        return self.drop_tied_lm_head and self.tied and name == "lm_head.weight"

    def gguf_name(self, name: str) -> str:
        """The GGUF tensor name for an HF tensor name, via the gguf package's name map."""
        mapped = self.name_map.get_name(name, try_suffixes=(".weight", ".bias"))
        if mapped is None:
            raise UnsupportedArchitecture(
                f"Tensor '{name}' of this {self.hf_name} model has no GGUF name for architecture "
                f"'{self.arch_name}'. The checkpoint has layers the {self.arch_name} converter does not know "
                f"(a vision tower, an extra head, quantised weights?)."
            )
        return mapped

    def transform(self, name: str, tensor) -> Iterator[tuple[str, object]]:
        """Yield (gguf_name, array) for one HF tensor (float32 numpy; also called on shape-only arrays)."""
        yield self.gguf_name(name), tensor

    def extra_tensors(self) -> Iterable[tuple[str, object]]:
        """Tensors llama.cpp wants that the checkpoint does not store (e.g. rope factors)."""
        return ()


def llama3_rope_factors(rope: dict, head_dim: int):
    """Per-frequency divisors llama.cpp applies for Llama 3.1+ 'llama3' rope scaling."""
    import numpy as np

    base = float(rope.get("rope_theta", 10000.0))
    factor = float(rope.get("factor", 8.0))
    low, high = float(rope.get("low_freq_factor", 1.0)), float(rope.get("high_freq_factor", 4.0))
    old_ctx = float(rope.get("original_max_position_embeddings", 8192))
    # float32 throughout, in the order torch evaluates llama.cpp's converter (`a / t` is t.reciprocal() * a
    # there), so the factors match its file bit for bit
    f32 = np.float32
    exps = np.arange(0, head_dim, 2, dtype=np.float32) / f32(head_dim)
    freqs = np.reciprocal(np.power(f32(base), exps, dtype=np.float32))
    out = []
    for f in freqs:
        wavelen = np.reciprocal(f) * f32(2 * math.pi)
        if wavelen < old_ctx / high:
            out.append(1.0)
        elif wavelen > old_ctx / low:
            out.append(factor)
        else:
            smooth = (np.reciprocal(wavelen) * f32(old_ctx) - f32(low)) / f32(high - low)
            out.append(np.reciprocal((f32(1) - smooth) / f32(factor) + smooth))
    return np.array(out, dtype=np.float32)
