"""AdaLoRA through peft: LoRA in SVD form (P diag(E) Q) whose rank budget is moved during training
from the layers that matter less to those that matter more.

Starts every adapted linear at rank 1.5 x lora.r and prunes towards an average of lora.r: a warm-up
tenth of the steps at full rank, reallocation, then the last fifth at the final ranks. The
reallocation needs the gradients of each step, so a trainer callback calls peft's
`update_and_allocate` after every optimizer step. It merges like LoRA.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.train.methods import Export, Method, register_method
from engine.train.methods.lora import lora_target_modules


def initial_rank(cfg) -> int:
    return max(cfg.lora.r + 1, round(cfg.lora.r * 1.5))


@dataclass(frozen=True)
class AdaloraMethod(Method):
    def attach(self, model, cfg, head):
        from peft import AdaLoraConfig, get_peft_model

        from engine.train.model_setup import HEADS

        # total_step is rewritten with the trainer's real step count when training begins
        acfg = AdaLoraConfig(init_r=initial_rank(cfg), target_r=cfg.lora.r, lora_alpha=cfg.lora.alpha,
                             lora_dropout=cfg.lora.dropout, target_modules=lora_target_modules(model, cfg),
                             total_step=max(cfg.optim.max_steps, 100), task_type=HEADS[head][1])
        return get_peft_model(model, acfg)

    def trainable(self, shape, cfg):
        r = initial_rank(cfg)
        return sum(r * (i + o) + r for _, i, o in shape.modules(cfg.lora.target_modules)) * shape.num_layers

    def callbacks(self, model, cfg):
        return [rank_allocation_callback(model)]


def rank_allocation_callback(model):
    """A TrainerCallback that sizes AdaLoRA's schedule to the run and reallocates ranks every step."""
    from transformers import TrainerCallback

    class RankAllocation(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            tuner = model.base_model
            acfg = tuner.peft_config[tuner.trainable_adapter_name]
            acfg.total_step = max(state.max_steps, 3)
            acfg.tinit = acfg.total_step // 10
            acfg.tfinal = acfg.total_step // 5
            for name, p in model.named_parameters():
                if ".ranknum." in name:  # peft's fixed rank divisor: a trainer's set_adapter re-enables its grad
                    p.requires_grad_(False)

        def on_optimizer_step(self, args, state, control, **kwargs):
            # gradients are still there (zero_grad comes after this callback): rank importance reads them
            model.base_model.update_and_allocate(state.global_step)

    return RankAllocation()


register_method(AdaloraMethod(
    "adalora", "reparametrisation", "AdaLoRA: LoRA in SVD form whose rank budget moves to the layers that need it "
    "(starts at 1.5 x lora.r, ends at lora.r on average).", Export(merge=True), lr_factor=1.0,
    options=("lora.r", "lora.alpha", "lora.dropout", "lora.target_modules")))
