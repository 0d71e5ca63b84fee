"""Load the base model for a method and attach what will be trained.

The base is loaded in the compute dtype (adapter methods; 4/8-bit when the method's quant.load_in
says so) or in fp32 (methods that train the base's own weights); the method object
(engine/train/methods/) then attaches its trainable parameters.

Target modules are checked against the model's own linear layers so a typo
fails before any training with the list of names that do exist.
"""

from __future__ import annotations

from typing import Any

from engine.errors import ConfigError
from engine.train.device import DeviceChoice

ATTENTION_NAMES = ("q_proj", "k_proj", "v_proj", "o_proj", "qkv_proj", "c_attn", "query_key_value", "Wqkv", "out_proj", "dense")


def linear_layer_names(model, under: str | None = None) -> list[str]:
    """Leaf names of the linear layers LoRA can adapt (the output head excluded; only below `under` when given)."""
    import torch.nn as nn

    names = set()
    head = model.get_output_embeddings()
    for full, module in model.named_modules():
        if module is head or (under and not full.startswith(under + ".")):
            continue
        if isinstance(module, nn.Linear) or type(module).__name__ in ("Linear4bit", "Linear8bitLt"):
            names.add(full.split(".")[-1])
    return sorted(names)


def resolve_targets(model, target: Any) -> Any:
    """'all-linear', 'attention' or an explicit list, validated against the model (a VLM's text decoder only)."""
    from engine.vision.modules import language_model_prefix, scoped_targets

    prefix = language_model_prefix(model)
    available = linear_layer_names(model, prefix)
    if target == "all-linear":
        return scoped_targets("all-linear", available, prefix)
    if target == "attention":
        chosen = [n for n in available if n in ATTENTION_NAMES]
        if not chosen:
            raise ConfigError(f"lora.target_modules=attention found no attention projections; this model's linear layers are: {', '.join(available)}.")
        return scoped_targets(chosen, available, prefix)
    wanted = [target] if isinstance(target, str) else list(target)
    unknown = [n for n in wanted if n not in available]
    if unknown:
        raise ConfigError(
            f"lora.target_modules has {unknown}, which this model does not have. Its linear layers are: "
            f"{', '.join(available)} (or use 'all-linear' / 'attention')."
        )
    return scoped_targets(wanted, available, prefix)


def quantization_config(cfg, choice: DeviceChoice):
    """BitsAndBytesConfig for quant.load_in (4bit for qlora by default), or None."""
    from engine.train.methods import resolved_load_in

    load_in = resolved_load_in(cfg)
    if load_in == "none":
        return None
    from transformers import BitsAndBytesConfig

    if load_in == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=cfg.quant.quant_type,
        bnb_4bit_use_double_quant=cfg.quant.double_quant,
        bnb_4bit_compute_dtype=choice.dtype,
        bnb_4bit_quant_storage=choice.dtype if choice.device == "cuda" else None,
    )


# The model class a recipe's head needs: a causal LM, a scalar-score head for reward models, or a
# vision-language model (engine/vision/: images in, text out; trained as a causal LM).
HEADS = {"causal-lm": ("AutoModelForCausalLM", "CAUSAL_LM"), "sequence-classification": ("AutoModelForSequenceClassification", "SEQ_CLS"),
         "image-text-to-text": ("AutoModelForImageTextToText", "CAUSAL_LM")}


def load_base(cfg, model_dir, choice: DeviceChoice, head: str = "causal-lm", pad_token_id=None):
    """The base model on its device, quantised when the method asks for it.

    head='sequence-classification' loads the same weights with a fresh one-output score head
    (a reward model); the head is trained, with LoRA it is saved with the adapter.
    """
    import torch
    import transformers

    bnb = quantization_config(cfg, choice)
    # Adapter methods keep the frozen base in the compute dtype; methods that train the
    # base weights keep fp32 master weights (bf16 AdamW updates lose small steps).
    from engine.train.methods import get_method

    dtype = torch.float32 if get_method(cfg.method).trains_base else choice.dtype
    from engine.train.cpu_attention import attention_for

    attn = attention_for(choice.device, choice.dtype_name if dtype != torch.float32 else "fp32")
    kwargs = dict(dtype=dtype, trust_remote_code=cfg.model.trust_remote_code, attn_implementation=attn)
    if bnb is not None:
        from engine.vision.modules import quantisation_skips

        bnb.llm_int8_skip_modules = quantisation_skips(model_dir) or None  # a VLM's vision side stays 16-bit
        kwargs["quantization_config"] = bnb
        from engine.train.ranks import local_rank

        kwargs["device_map"] = {"": choice.device if choice.device != "cuda" else local_rank()}  # a rank's own GPU
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # the run's own progress and events follow
    auto_class = getattr(transformers, HEADS[head][0])
    if head == "sequence-classification":
        kwargs["num_labels"] = 1  # one scalar reward per sequence
        level = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # "score.weight newly initialized": expected, it is what we train
        try:
            model = auto_class.from_pretrained(str(model_dir), **kwargs)
        finally:
            hf_logging.set_verbosity(level)
        model.config.pad_token_id = pad_token_id  # batches of pairs are padded: the score reads the last real token
    else:
        model = auto_class.from_pretrained(str(model_dir), **kwargs)
    if bnb is None:
        from engine.train.ranks import local_rank

        model.to(f"cuda:{local_rank()}" if choice.device == "cuda" else choice.device)
    model.config.use_cache = False
    return model


def attach_trainable(model, cfg, gradient_checkpointing: bool, head: str = "causal-lm"):
    """Freeze/wrap the model for its method (engine/train/methods/); returns the model to train."""
    from engine.train.methods import get_method

    from engine.train.activation_offload import enable_checkpointing
    from engine.train.kbit_prep import is_kbit, prepare_kbit_base

    method = get_method(cfg.method)
    if method.is_adapter and is_kbit(model):
        model = prepare_kbit_base(model, cfg, gradient_checkpointing)  # no fp32 upcast of the frozen float weights
    elif gradient_checkpointing:
        enable_checkpointing(model, cfg)
        if method.is_adapter:
            model.enable_input_require_grads()
    return method.attach(model, cfg, head)


def train_score_head(model, head: str) -> None:
    """A reward model's new score head always trains (methods that freeze the base call this)."""
    if head == "sequence-classification":
        for p in model.score.parameters():
            p.requires_grad_(True)


def skip_adapter_input_casts(model) -> int:
    """Let LoRA layers take their input in the autocast dtype instead of copying it to fp32 first.

    peft casts each adapter's input to its fp32 weight dtype; under bf16/fp16 autocast (how the
    trainer runs a 16-bit compute dtype) the matmul then casts it straight back, so every adapted
    layer paid two full copies of its input for a bit-identical result (bf16 -> fp32 -> bf16 is
    exact). On SmolLM2 that was ~680 copies per step. Returns the number of layers changed.
    """
    from peft.tuners.tuners_utils import BaseTunerLayer

    changed = 0
    for module in model.modules():
        if isinstance(module, BaseTunerLayer):
            module.cast_input_dtype_enabled = False
            changed += 1
    return changed


def keep_adapters_fp32(model) -> int:
    """Trainable weights back to fp32 after a TRL trainer cast them to bf16 for a quantised base.

    TRL's DPO/KTO trainers cast every trainable parameter of a 4/8-bit model to bf16; edgetune
    keeps adapter weights in fp32 everywhere (the optimizer's small updates survive, and CPUs
    without native bf16 run fp32). Returns how many tensors were changed.
    """
    import torch

    changed = 0
    for p in model.parameters():
        if p.requires_grad and p.dtype in (torch.bfloat16, torch.float16):
            p.data = p.data.float()
            changed += 1
    return changed


def freeze_all_but_top(model, n: int) -> None:
    """Train only the last `n` transformer blocks and the final norm."""
    layers = decoder_layers(model)
    if not 0 < n <= len(layers):
        raise ConfigError(f"train.freeze_layers={n} but the model has {len(layers)} layers; use 1..{len(layers)}.")
    for p in model.parameters():
        p.requires_grad_(False)
    for layer in layers[-n:]:
        for p in layer.parameters():
            p.requires_grad_(True)
    norm = getattr(getattr(model, "model", model), "norm", None)
    if norm is not None:
        for p in norm.parameters():
            p.requires_grad_(True)


def decoder_layers(model):
    """The decoder's transformer blocks (model.model.layers on Llama-like models)."""
    base = getattr(model, "model", model)
    for attr in ("layers", "h", "blocks"):
        if hasattr(base, attr):
            return list(getattr(base, attr))
    raise ConfigError(f"could not find the transformer layers of {type(model).__name__} (method=freeze and the bottleneck "
                      f"adapters need them); use method=lora instead.")


def count_params(model) -> tuple[int, int]:
    """(trainable, total) parameters; 4-bit weights count as their logical size, an embedding table kept in host
    RAM (engine/train/host_embedding.py) counts too."""
    from engine.train.host_embedding import host_params

    trainable, total = 0, host_params(model)
    for p in model.parameters():
        n = p.numel()
        if p.__class__.__name__ == "Params4bit":
            n *= 2
        total += n
        if p.requires_grad:
            trainable += n
    return trainable, total
