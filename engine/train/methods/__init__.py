"""Fine-tuning methods, as a registry: each family's file registers its methods with `@register_method`.

    method = get_method("dora")
    method.base_formats        # which base-weight formats it can sit on ("none", "4bit", "8bit")
    method.trainable(shape, cfg)  # trainable parameters, for the planner (no torch)
    method.attach(model, cfg, head)  # the model to train (imports peft/torch lazily)
    method.export                # how it reaches GGUF/ONNX, or why it cannot

Every place that branches on `method` asks its Method object; importing this package is cheap
(no torch), so the config's choices, the planner and `engine --help` use it too.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

from engine.errors import ConfigError

METHODS: dict[str, "Method"] = {}
GROUPS = {
    "reparametrisation": "Reparametrisation: a small update added to existing weights (foldable into them).",
    "additive": "Additive: new small modules inside the network.",
    "soft-prompt": "Soft prompts: trainable vectors in front of the input or in every layer's attention.",
    "selective": "Selective: train a chosen subset of the model's own weights.",
}


@dataclass(frozen=True)
class Export:
    """How a trained method reaches the edge formats."""

    merge: bool  # folds into the base weights (then GGUF/ONNX of the merged model)
    gguf_adapter: bool = False  # also exportable as a llama.cpp LoRA-adapter GGUF
    why_not: str = ""  # when merge is False: why, and what to do instead
    label: str = ""  # when merge is False: the reason in a few words, for tables


@dataclass(frozen=True)
class Method:
    """One fine-tuning method. Subclasses implement `attach` and `trainable`."""

    name: str
    group: str
    summary: str  # one line, shown in `engine config --fields`, the app and `engine compare`
    export: Export
    lr_factor: float = 1.0  # recommended lr relative to LoRA's (engine compare uses it unless lr is set)
    base_formats: tuple = ("none",)  # quant.load_in values it can sit on: none, 4bit, 8bit
    default_load_in: str = "none"  # what quant.load_in=auto means for it
    trains_base: bool = False  # updates the model's own weights: fp32 master weights, saved as final/
    saved_as: str = "peft"  # peft (adapter/ via peft) | module (adapter/ via engine/train/methods) | full (final/)
    backends: tuple = ("hf",)
    prefix_ok: bool = True  # a padded batch's common opening may run once (engine/train/shared_prefix.py)
    autocast_inputs: bool = False  # its peft layers may take autocast-dtype inputs (model_setup.skip_adapter_input_casts)
    options: tuple = field(default=())  # config keys it reads, for the app and the docs
    stages: tuple = ("sft", "dpo", "orpo", "simpo", "kto", "rm", "grpo", "rloo")  # training stages it works under (tested)
    stage_note: str = ""  # why the other stages are refused

    # -- hooks -------------------------------------------------------------------------------
    def refusal(self, facts: "ModelFacts", cfg) -> Optional[str]:
        """Why it cannot apply to this model/config (checked before loading), or None."""
        return None

    def attach(self, model, cfg, head: str):
        """The model with this method's trainable parameters attached (everything else frozen)."""
        raise NotImplementedError

    def trainable(self, shape, cfg) -> int:
        """Trainable parameters on a model of `shape` (engine/plan/shape.py), without torch."""
        raise NotImplementedError

    def activation_bytes(self, shape, cfg) -> int:
        """Bytes per token and layer its own modules keep for backward (beyond the layer's own), for the planner."""
        return 0

    def virtual_tokens(self, cfg) -> int:
        """Tokens the method adds in front of every sequence (soft prompts), for activations."""
        return 0

    def wants_optimizer(self, cfg) -> bool:
        """Whether `optimizer` builds the optimizer instead of the trainer (LoRA+)."""
        return False

    def optimizer(self, model, cfg, optim_cls, optim_kwargs: dict):
        """The optimizer (the trainer's class and its keyword arguments, lr included) when wants_optimizer."""
        raise NotImplementedError

    def callbacks(self, model, cfg) -> list:
        """Trainer callbacks the method needs (AdaLoRA's rank reallocation)."""
        return []

    @property
    def is_adapter(self) -> bool:
        return self.saved_as != "full"


@dataclass(frozen=True)
class ModelFacts:
    """What the refusals need to know about a model, read from its config.json (no weights loaded)."""

    model_type: str
    bias_params: int  # bias parameters in the decoder layers (0 on Llama-like models)
    num_layers: int


def register_method(method: Method) -> Method:
    """Add a method to the registry (each family file calls this at import)."""
    METHODS[method.name] = method
    return method


def _load_all() -> None:
    # import order is the listing order: reparametrisation, additive, soft prompts, selective
    from engine.train.methods import lora, lycoris, adalora, vera, ia3, bottleneck, prompts, selective  # noqa: F401, I001


def method_names() -> list[str]:
    _load_all()
    return list(METHODS)


def get_method(name: str) -> Method:
    """The registered method; an unknown name lists the known ones."""
    _load_all()
    if name not in METHODS:
        raise ConfigError(f"method={name!r} is unknown; known methods: {', '.join(METHODS)}.")
    return METHODS[name]


def methods_by_group() -> dict[str, list[Method]]:
    _load_all()
    out: dict[str, list[Method]] = {g: [] for g in GROUPS}
    for m in METHODS.values():
        out[m.group].append(m)
    return out


def resolved_load_in(cfg) -> str:
    """quant.load_in with 'auto' resolved for the method: 4bit for qlora, none otherwise."""
    load_in = cfg.quant.load_in
    return get_method(cfg.method).default_load_in if load_in == "auto" else load_in


def check_applies(cfg, facts: Optional[ModelFacts]) -> None:
    """Refuse, before loading, a method that cannot run on this base format or model (naming what would)."""
    method = get_method(cfg.method)
    load_in = resolved_load_in(cfg)
    if load_in not in method.base_formats:
        fits = [f"method={m.name} quant.load_in={load_in}" for m in METHODS.values() if load_in in m.base_formats]
        own = "auto" if method.default_load_in in method.base_formats and cfg.quant.load_in != "auto" else method.base_formats[0]
        raise ConfigError(
            f"method={method.name} cannot train on a {load_in} base (quant.load_in={cfg.quant.load_in}); it works on a "
            f"{' or '.join(method.base_formats)} base. Use quant.load_in={own}, or a method that sits on a {load_in} "
            f"base: {', '.join(fits[:4]) if fits else 'none'}.")
    if cfg.stage not in method.stages:
        raise ConfigError(f"method={method.name} trains with stage={' or stage='.join(method.stages)} only, not "
                          f"stage={cfg.stage}: {method.stage_note} Use method=lora (or qlora) for stage={cfg.stage}.")
    if facts is not None:
        why = method.refusal(facts, cfg)
        if why:
            raise ConfigError(f"method={method.name} cannot apply to this model: {why}")


def model_facts(config: dict) -> ModelFacts:
    """ModelFacts from a config.json dict (biases counted as the planner's shape counts them)."""
    from engine.plan.shape import shape_from_config

    return facts_from_shape(shape_from_config(config, config.get("_name_or_path", "model")))


def facts_from_shape(shape) -> ModelFacts:
    return ModelFacts(shape.model_type, bias_params(shape) * shape.num_layers, shape.num_layers)


def bias_params(shape) -> int:
    """Bias parameters of one decoder layer."""
    return (shape.num_heads + 2 * shape.num_kv_heads) * shape.head_dim if shape.qkv_bias else 0


def per_layer(fn: Callable[[tuple], int], modules) -> int:
    """Sum of fn over one layer's adapted linears (name, in, out)."""
    return sum(fn(m) for m in modules)
