"""A model's shape: the handful of numbers memory depends on, read from a config.json dict.

    shape = shape_from_config(json.load(open("config.json")), name="my-model")
    shape.total_params, shape.linear_modules   # per-layer (name, in, out) of every linear

The same parser reads a local config.json and the built-in catalog (whose entries
are config.json excerpts), so a model the catalog lacks is planned exactly like
one it has. Linear layouts differ per family (Phi-3 fuses q/k/v and gate/up);
they are a registry keyed by `model_type`, with the Llama layout as the default
that covers Llama, Mistral, Qwen2/3, Gemma 1-3, SmolLM and most others.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

from engine.errors import ModelSourceError
from engine.plan.vision_shape import VisionShape, vision_shape

Linear = tuple[str, int, int]  # (module name, in_features, out_features) inside one decoder layer

# Module names LoRA's 'attention' target means, per layout; everything else is MLP.
ATTENTION_MODULES = {"q_proj", "k_proj", "v_proj", "o_proj", "qkv_proj"}


@dataclass(frozen=True)
class ModelShape:
    """What the planner needs to know about a decoder-only transformer."""

    name: str
    model_type: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    tied_embeddings: bool
    qkv_bias: bool = False
    norms_per_layer: int = 2  # Gemma 2/3 have 4 (pre and post norms around attention and MLP)
    extra_frozen_params: int = 0  # e.g. the vision tower a Gemma 3 checkpoint loads along with the LM
    checkpoint_bytes: int = 2  # bytes/param of the weights on disk (config "dtype"); hub models ship bf16
    source: str = "config"
    linear_modules: tuple[Linear, ...] = field(default=(), compare=False)
    vision: Optional[VisionShape] = field(default=None, compare=False)  # a VLM's encoder + projector (vision_shape.py)

    @property
    def language_params(self) -> int:
        """The language model's parameters (everything but a VLM's vision encoder and projector)."""
        return self.total_params - (self.vision.total_params if self.vision else 0)

    @property
    def linear_params_per_layer(self) -> int:
        return sum(i * o for _, i, o in self.linear_modules)

    @property
    def linear_params(self) -> int:
        """Parameters of the decoder layers' linear layers: what 4-bit quantisation shrinks."""
        return self.linear_params_per_layer * self.num_layers

    @property
    def embedding_params(self) -> int:
        """Input embedding plus the output head when it is a separate matrix."""
        return self.vocab_size * self.hidden_size * (1 if self.tied_embeddings else 2)

    @property
    def small_params(self) -> int:
        """Norm weights and biases: tiny, kept in 16/32 bit by every method."""
        per_layer = self.norms_per_layer * self.hidden_size
        if self.qkv_bias:
            per_layer += (self.num_heads + 2 * self.num_kv_heads) * self.head_dim
        return per_layer * self.num_layers + self.hidden_size

    @property
    def layer_params(self) -> int:
        """All parameters of one decoder layer (for method=freeze)."""
        return self.linear_params_per_layer + self.small_params // max(self.num_layers, 1)

    @property
    def total_params(self) -> int:
        return self.linear_params + self.embedding_params + self.small_params + self.extra_frozen_params

    def modules(self, target) -> list[Linear]:
        """The per-layer linears LoRA adapts for `lora.target_modules` ('all-linear', 'attention' or names)."""
        if target == "all-linear":
            return list(self.linear_modules)
        if target == "attention":
            return [m for m in self.linear_modules if m[0] in ATTENTION_MODULES]
        wanted = [target] if isinstance(target, str) else list(target)
        chosen = [m for m in self.linear_modules if m[0] in wanted]
        if not chosen:
            names = ", ".join(m[0] for m in self.linear_modules)
            raise ModelSourceError(
                f"lora.target_modules={wanted} matches no linear layer of {self.name}; its layers are: {names} "
                f"(or use 'all-linear' / 'attention')."
            )
        return chosen


# --- linear layouts, a registry keyed by model_type -------------------------------------------

LayoutFn = Callable[[int, int, int, int, int], list[Linear]]
LAYOUTS: dict[str, LayoutFn] = {}


def layout(*model_types: str):
    """Decorator: register the per-layer linear layout of some model types."""

    def deco(fn: LayoutFn) -> LayoutFn:
        for t in model_types:
            LAYOUTS[t] = fn
        return fn

    return deco


def llama_layout(h: int, i: int, nh: int, nkv: int, d: int) -> list[Linear]:
    """Separate q/k/v/o and gate/up/down projections (the default)."""
    return [("q_proj", h, nh * d), ("k_proj", h, nkv * d), ("v_proj", h, nkv * d), ("o_proj", nh * d, h),
            ("gate_proj", h, i), ("up_proj", h, i), ("down_proj", i, h)]


@layout("phi3")
def phi3_layout(h: int, i: int, nh: int, nkv: int, d: int) -> list[Linear]:
    """Phi-3/Phi-4 fuse q,k,v into qkv_proj and gate,up into gate_up_proj."""
    return [("qkv_proj", h, (nh + 2 * nkv) * d), ("o_proj", nh * d, h),
            ("gate_up_proj", h, 2 * i), ("down_proj", i, h)]


# Families whose layers carry extra norms or biases the default does not assume.
FOUR_NORMS = {"gemma2", "gemma3", "gemma3_text"}
QKV_BIAS = {"qwen2"}
# Multimodal checkpoints that nest the language model under "text_config" and load a vision
# tower too; its size is roughly constant per family (SigLIP-So400m for Gemma 3).
VISION_TOWER_PARAMS = {"gemma3": 417_000_000}
DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}


def _get(cfg: dict, *keys: str, default=None):
    for k in keys:
        if cfg.get(k) is not None:
            return cfg[k]
    return default


def vision_params(config: dict, text_hidden: int) -> int:
    """Frozen vision-side parameters of a multimodal config: the family's known tower size, else the
    ViT encoder + projector read from its vision_config (engine/plan/vision_shape.py)."""
    outer_type = str(config.get("model_type", ""))
    vision = None if outer_type in VISION_TOWER_PARAMS else vision_shape(config, text_hidden)
    return vision.total_params if vision else VISION_TOWER_PARAMS.get(outer_type, 0)


def shape_from_config(config: dict, name: str, source: str = "config", processor: Optional[dict] = None) -> ModelShape:
    """Parse a Hugging Face config.json dict (text_config of multimodal models too; `processor`, the folder's
    image-processor settings, tells a VLM's image splitting)."""
    outer_type = str(config.get("model_type", ""))
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else config
    model_type = str(text.get("model_type") or outer_type or "llama")
    h = _get(text, "hidden_size", "n_embd", "d_model")
    layers = _get(text, "num_hidden_layers", "n_layer", "num_layers")
    vocab = _get(text, "vocab_size", default=_get(config, "vocab_size"))
    if not (h and layers and vocab):
        raise ModelSourceError(
            f"config.json of '{name}' lacks hidden_size / num_hidden_layers / vocab_size, so the planner cannot "
            f"size it. Is it a decoder-only language model?"
        )
    if _get(text, "num_local_experts", "num_experts", "n_routed_experts"):
        raise ModelSourceError(
            f"'{name}' is a mixture-of-experts model; the memory planner sizes dense models only. "
            f"Plan a dense model of similar total size instead."
        )
    nh = int(_get(text, "num_attention_heads", "n_head", default=max(1, h // 64)))
    nkv = int(_get(text, "num_key_value_heads", default=nh))
    d = int(_get(text, "head_dim", default=h // nh))
    i = int(_get(text, "intermediate_size", "n_inner", "ffn_dim", default=4 * h))
    tied = bool(_get(text, "tie_word_embeddings", default=_get(config, "tie_word_embeddings", default=False)))
    linears = LAYOUTS.get(model_type, llama_layout)(int(h), i, nh, nkv, d)
    dtype = str(_get(text, "dtype", "torch_dtype", default=_get(config, "dtype", "torch_dtype", default="bfloat16")))
    vision = None if text is config or outer_type in VISION_TOWER_PARAMS else vision_shape(config, int(h), processor)
    return ModelShape(
        name=name, model_type=model_type, vocab_size=int(vocab), hidden_size=int(h), intermediate_size=i,
        num_layers=int(layers), num_heads=nh, num_kv_heads=nkv, head_dim=d, tied_embeddings=tied,
        qkv_bias=model_type in QKV_BIAS or bool(text.get("attention_bias")),
        norms_per_layer=4 if model_type in FOUR_NORMS else 2,
        extra_frozen_params=vision_params(config, int(h)) if text is not config else 0,
        checkpoint_bytes=DTYPE_BYTES.get(dtype.replace("torch.", ""), 2), source=source, linear_modules=tuple(linears),
        vision=vision,
    )
