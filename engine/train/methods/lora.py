"""The LoRA family through peft: lora, qlora, dora (+ rsLoRA scaling, PiSSA/OLoRA initialisation, LoRA+).

    lora   W + (alpha/r) B A on a 16/32-bit (or 8-bit) base; B starts at zero, so training starts at the base
    qlora  the same on a 4-bit NF4 base (bitsandbytes, double quantisation): the least memory
    dora   weight-decomposed LoRA: a trained magnitude per output row times the LoRA-updated direction

lora.init=pissa/olora start A and B from the weight's principal components / QR factors instead of
noise and zero (peft subtracts them from the base so training still starts at the base's output);
lora.plus_lr_ratio > 0 trains B with a higher lr than A (LoRA+, peft's optimizer helper). A PiSSA/OLoRA
adapter is saved converted to a plain LoRA of rank 2r, so it applies to the unmodified base.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.train.methods import Export, Method, register_method

LORA_OPTIONS = ("lora.r", "lora.alpha", "lora.dropout", "lora.target_modules", "lora.rslora", "lora.init", "lora.plus_lr_ratio")
MERGE_GGUF = Export(merge=True, gguf_adapter=True)


INITIAL_ADAPTER = "initial_adapter"  # in the run folder: PiSSA/OLoRA's starting adapter, for the conversion on save


def save_initial_adapter(model, cfg) -> None:
    """PiSSA/OLoRA move the adapter's starting value out of the base weights; keep it, so the saved adapter
    can be converted into a plain LoRA that applies to the *original* base (chat, merge, export), as peft's
    path_initial_model_for_weight_conversion does. The decomposition is deterministic: a resume recreates it."""
    from pathlib import Path

    out = Path(cfg.output_dir) / INITIAL_ADAPTER
    if out.is_dir():
        return
    tmp = out.with_name(f".{INITIAL_ADAPTER}.partial")
    model.save_pretrained(str(tmp))
    tmp.rename(out)


def projector_to_save(model, cfg):
    from engine.vision.modules import projector_to_save as for_vlm

    return for_vlm(model, cfg)


def lora_target_modules(model, cfg):
    from engine.train.model_setup import resolve_targets

    targets = resolve_targets(model, cfg.lora.target_modules)
    if getattr(cfg.lora, "vision_tower", False):
        from engine.vision.tower_lora import tower_targets

        targets = tower_targets(model, cfg, targets)  # the vision encoder's linears too
    return targets


@dataclass(frozen=True)
class LoraMethod(Method):
    dora: bool = False

    def refusal(self, facts, cfg):
        from engine.train.methods import resolved_load_in

        if cfg.lora.init != "gaussian" and resolved_load_in(cfg) != "none":
            return (f"lora.init={cfg.lora.init} decomposes the base weights, which a quantised base does not hold in full "
                    f"precision. Use lora.init=gaussian, or method=lora on a 16-bit base.")
        return None

    def attach(self, model, cfg, head):
        from peft import LoraConfig, get_peft_model

        from engine.train.model_setup import HEADS

        init = {"gaussian": True, "pissa": "pissa", "olora": "olora"}[cfg.lora.init]
        lcfg = LoraConfig(
            r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
            target_modules=lora_target_modules(model, cfg), use_rslora=cfg.lora.rslora, use_dora=self.dora,
            init_lora_weights=init, bias="none", task_type=HEADS[head][1],
            modules_to_save=projector_to_save(model, cfg),
        )  # SEQ_CLS: peft trains and saves the score head with the adapter (modules_to_save)
        model = get_peft_model(model, lcfg)
        if cfg.lora.init != "gaussian":
            save_initial_adapter(model, cfg)
        return model

    def trainable(self, shape, cfg):
        modules = shape.modules(cfg.lora.target_modules)
        n = sum(cfg.lora.r * (i + o) for _, i, o in modules)
        if self.dora:
            n += sum(o for _, _, o in modules)  # one magnitude per output row
        return n * shape.num_layers

    def wants_optimizer(self, cfg):
        return cfg.lora.plus_lr_ratio > 0

    def optimizer(self, model, cfg, optim_cls, optim_kwargs):
        from peft.optimizers import create_loraplus_optimizer

        kwargs = dict(optim_kwargs)
        lr = kwargs.pop("lr")
        kwargs.setdefault("weight_decay", cfg.optim.weight_decay)
        return create_loraplus_optimizer(model=model, optimizer_cls=optim_cls, lr=lr,
                                         loraplus_lr_ratio=cfg.lora.plus_lr_ratio, **kwargs)


register_method(LoraMethod(
    "lora", "reparametrisation", "LoRA: a low-rank update (alpha/r) B A beside each adapted linear, on a 16-bit base.",
    MERGE_GGUF, base_formats=("none", "8bit", "4bit"), backends=("hf", "unsloth"), options=LORA_OPTIONS, autocast_inputs=True))
register_method(LoraMethod(
    "qlora", "reparametrisation", "QLoRA: LoRA on a 4-bit NF4 base with double quantisation; the least memory.",
    MERGE_GGUF, base_formats=("4bit",), default_load_in="4bit", backends=("hf", "unsloth"),
    options=LORA_OPTIONS + ("quant.quant_type", "quant.double_quant"), autocast_inputs=True))
register_method(LoraMethod(
    "dora", "reparametrisation", "DoRA: LoRA on the direction of each weight plus a trained magnitude per output row.",
    Export(merge=True, gguf_adapter=False), base_formats=("none", "8bit", "4bit"), backends=("hf", "unsloth"),
    options=LORA_OPTIONS, dora=True))
