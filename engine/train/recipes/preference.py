"""What the preference recipes (dpo, orpo, simpo, kto, rm) share: metric names and adapter dtype.

The step event's `metrics` keys are the same for every pairwise stage, so the terminal, the
app and the tests read one set of names whatever TRL trainer produced them.
"""

from __future__ import annotations

# TRL's log keys -> our `metrics` names (engine/events.py documents them)
PAIR_METRICS = {"rewards/chosen": "reward_chosen", "rewards/rejected": "reward_rejected",
                "rewards/margins": "reward_margin", "rewards/accuracies": "reward_accuracy"}


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


def drop_reference_adapter(model) -> None:
    """Make the reference 'the policy with its adapter disabled' (no second copy of the adapter).

    Given a model that is already a PeftModel, TRL's DPO/KTO trainers add a frozen copy of the
    adapter named 'ref' and run the reference pass through it. A freshly initialised LoRA is the
    identity, so that copy computes exactly the start model: deleting it makes TRL fall back to
    disabling the adapter, the same reference without the copy's memory and compute.
    """
    peft_config = getattr(model, "peft_config", None)
    if peft_config and "ref" in peft_config:
        model.delete_adapter("ref")
        model.set_adapter("default")
