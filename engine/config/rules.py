"""Checks that look at more than one config value at a time.

Each rule is a small function registered in RULES; it returns an error message
or None. Keeping them in one list makes the set of forbidden combinations easy
to read and to extend.
"""

from __future__ import annotations

from typing import Callable, Optional

from engine.errors import ConfigError

Rule = Callable[["RunConfig"], Optional[str]]  # noqa: F821
RULES: list[Rule] = []


def rule(fn: Rule) -> Rule:
    RULES.append(fn)
    return fn


@rule
def method_fits_base_format(cfg) -> Optional[str]:
    """A method that cannot sit on the chosen base format (full on 4-bit, qlora on 16-bit, LoHa on 4-bit, ...)."""
    from engine.train.methods import check_applies

    try:
        check_applies(cfg, None)  # model-specific refusals (BitFit without biases) come when the model is known
    except ConfigError as e:
        return str(e)
    return None


@rule
def method_options_fit(cfg) -> Optional[str]:
    if cfg.lora.plus_lr_ratio < 0:
        return f"lora.plus_lr_ratio must be >= 0 (got {cfg.lora.plus_lr_ratio}); 0 turns LoRA+ off, 16 is the paper's choice."
    from engine.train.methods import get_method

    method = get_method(cfg.method)
    if cfg.lora.plus_lr_ratio > 0 and not hasattr(method, "dora"):
        return f"lora.plus_lr_ratio applies to method=lora/qlora/dora, not method={cfg.method}; set it to 0."
    if cfg.lora.vision_tower and "lora.target_modules" not in method.options:
        return (f"lora.vision_tower puts LoRA on a VLM's vision encoder, so it needs a LoRA-family method (lora, qlora, "
                f"dora, ...), not method={cfg.method}; remove it or change the method.")
    if cfg.prompt.num_virtual_tokens < 1:
        return f"prompt.num_virtual_tokens must be >= 1 (got {cfg.prompt.num_virtual_tokens})."
    if cfg.adapter.size < 1:
        return f"adapter.size must be >= 1 (got {cfg.adapter.size})."
    return None


@rule
def lr_positive(cfg) -> Optional[str]:
    if not cfg.optim.lr > 0:
        return f"optim.lr must be > 0 (got {cfg.optim.lr}); LoRA usually wants 1e-4..2e-4."
    return None


@rule
def some_length_of_training(cfg) -> Optional[str]:
    if cfg.optim.max_steps < 0 or cfg.optim.epochs <= 0 and cfg.optim.max_steps == 0:
        return "Set optim.epochs > 0 or optim.max_steps > 0 (max_steps wins when both are set)."
    return None


@rule
def positive_sizes(cfg) -> Optional[str]:
    for key, value in (("lora.r", cfg.lora.r), ("lora.alpha", cfg.lora.alpha),
                       ("sequence.max_len", cfg.sequence.max_len), ("optim.grad_accum", cfg.optim.grad_accum),
                       ("train.logging_steps", cfg.train.logging_steps)):
        if value <= 0:
            return f"{key} must be a positive integer (got {value})."
    if cfg.optim.batch_size != "auto" and cfg.optim.batch_size <= 0:
        return f"optim.batch_size must be a positive integer or 'auto' (got {cfg.optim.batch_size})."
    from engine.data.render import max_len_problem

    return max_len_problem(cfg.sequence.max_len)


@rule
def counts_not_negative(cfg) -> Optional[str]:
    for key, value, low in (("train.save_steps", cfg.train.save_steps, 0), ("train.eval_steps", cfg.train.eval_steps, 0),
                            ("train.early_stopping_patience", cfg.train.early_stopping_patience, 0),
                            ("train.keep_checkpoints", cfg.train.keep_checkpoints, 1),
                            ("train.freeze_layers", cfg.train.freeze_layers, 1)):
        if value < low:
            return f"{key} must be an integer >= {low} (got {value})."
    if cfg.optim.weight_decay < 0 or cfg.optim.max_grad_norm < 0:
        return "optim.weight_decay and optim.max_grad_norm must be >= 0 (0 turns them off)."
    return None


@rule
def known_column_names(cfg) -> Optional[str]:
    from engine.data.formats import FORMATS

    fields = sorted({f for fmt in FORMATS.values() for f in fmt.fields})
    for key, value in cfg.data.columns.items():
        if ":" in key and value is None:
            return (f"data.columns entry {key!r} has no value: YAML needs a space after the colon, "
                    f"e.g. data.columns='{{{key.replace(':', ': ', 1)}}}'.")
        if key not in fields:
            return f"data.columns maps unknown field {key!r}; the fields are: {', '.join(fields)}."
        if not isinstance(value, str) or not value.strip():
            return f"data.columns.{key} must name one of your columns (got {value!r})."
    return None


@rule
def fractions_in_range(cfg) -> Optional[str]:
    for key, value in (("data.eval_split", cfg.data.eval_split), ("optim.warmup_ratio", cfg.optim.warmup_ratio),
                       ("lora.dropout", cfg.lora.dropout)):
        if not 0.0 <= value < 1.0:
            return f"{key} must be in [0, 1) (got {value})."
    return None


@rule
def early_stopping_needs_eval(cfg) -> Optional[str]:
    if cfg.train.early_stopping_patience > 0 and cfg.data.eval_split == 0 and not cfg.data.eval_path:
        return "train.early_stopping_patience needs eval data: set data.eval_split (e.g. 0.1) or data.eval_path."
    return None


@rule
def known_export_targets(cfg) -> Optional[str]:
    bad = [t for t in cfg.export.targets if t not in ("gguf", "onnx")]
    if bad:
        return f"export.targets has unknown target(s) {bad}; allowed values: gguf, onnx."
    return None


@rule
def known_gguf_quant(cfg) -> Optional[str]:
    from engine.config.quant_types import GGUF_TYPES

    if cfg.export.gguf_quant.lower() not in GGUF_TYPES:
        return f"export.gguf_quant={cfg.export.gguf_quant!r} is unknown; allowed values: {', '.join(GGUF_TYPES)}."
    return None


@rule
def chat_template_resolves(cfg) -> Optional[str]:
    from engine.data.chat_templates import resolve_chat_template

    if cfg.model.chat_template:
        try:
            resolve_chat_template(cfg.model.chat_template)
        except ConfigError as e:
            return f"model.chat_template: {e}"
    return None


@rule
def onnx_pair_builds(cfg) -> Optional[str]:
    from engine.formats.onnx_targets import TARGETS, supported_pairs

    e = cfg.export
    if e.onnx_precision not in TARGETS[e.onnx_device].precisions:
        return (f"export.onnx_precision={e.onnx_precision} does not build for export.onnx_device={e.onnx_device} "
                f"(it takes {', '.join(TARGETS[e.onnx_device].precisions)}). Supported pairs: {supported_pairs()}.")
    return None


@rule
def stage_settings_train(cfg) -> Optional[str]:
    """Settings TRL's preference trainers refuse at start, caught before the model loads."""
    if cfg.stage == "kto" and cfg.optim.batch_size != "auto" and cfg.optim.batch_size < 2:
        return ("stage=kto needs optim.batch_size >= 2: its KL term pairs each answer with another prompt of the "
                "same batch. Use batch_size=2 (and grad_accum for a larger effective batch).")
    if cfg.stage == "dpo" and cfg.dpo.loss_type == "exo_pair" and cfg.dpo.label_smoothing <= 0:
        return "dpo.loss_type=exo_pair needs dpo.label_smoothing > 0 (the EXO paper uses 1e-3)."
    if cfg.stage == "dpo" and cfg.dpo.loss_type == "robust" and not 0 <= cfg.dpo.label_smoothing < 0.5:
        return "dpo.loss_type=robust needs dpo.label_smoothing in [0, 0.5) (the chance a pair's label is flipped)."
    return None


@rule
def rl_settings_train(cfg) -> Optional[str]:
    """Online-RL sampling settings and rewards, checked before the model loads (engine/config/rl_settings.py)."""
    from engine.config.rl_settings import rl_problem

    return rl_problem(cfg)


def check_combinations(cfg) -> None:
    """Raise ConfigError with the first broken rule's message."""
    for fn in RULES:
        msg = fn(cfg)
        if msg:
            raise ConfigError(msg)


from engine.config import dist_rules  # noqa: E402,F401  (registers the dist.* rules)
