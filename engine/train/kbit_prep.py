"""Prepare a 4/8-bit base for adapter training without peft's fp32 upcast.

peft's `prepare_model_for_kbit_training` casts every parameter that is not quantised (the
embedding, the output head, the norms) to fp32. On Llama-3.1-8B that is 1.05B frozen parameters
going from 2 to 4 bytes: 2.1 GB of a card's memory spent on weights that never change. The
frozen weights do not need fp32: they receive no updates, and the places where precision matters
already compute in fp32 (RMSNorm upcasts its input inside forward; the loss upcasts the logits).
Unsloth keeps them in 16-bit as well. So this does only the parts of peft's preparation that
training needs:

  * freeze every base parameter (the method attaches its trainable ones afterwards, in fp32);
  * keep the non-quantised weights in the compute dtype they were loaded in;
  * make the embedding output require grad, so gradients reach adapters below a checkpointed
    layer (non-reentrant checkpointing, optionally with its layer inputs offloaded to CPU RAM).

    model = prepare_kbit_base(model, cfg, gradient_checkpointing=True)

The environment variable EDGETUNE_PEFT_UPCAST=1 restores peft's upcast, only so that the two can be
compared (benchmarks/quickstart_variants.py measures both).
"""

from __future__ import annotations

UPCAST_ENV = "EDGETUNE_PEFT_UPCAST"  # "1": peft's prepare_model_for_kbit_training (fp32 copies of the float weights)


def is_kbit(model) -> bool:
    """The base was loaded in 4-bit or 8-bit by bitsandbytes."""
    return bool(getattr(model, "is_loaded_in_4bit", False) or getattr(model, "is_loaded_in_8bit", False))


def prepare_kbit_base(model, cfg, gradient_checkpointing: bool):
    """Freeze a quantised base for adapter training, keeping its float weights in the compute dtype.

    Returns the model (the same object). With gradient_checkpointing the decoder layers are
    checkpointed non-reentrantly (train.gradient_checkpointing=offload also moves their saved
    inputs to CPU RAM on a GPU, engine/train/activation_offload.py).
    """
    import os

    from engine.train.activation_offload import enable_checkpointing

    if os.environ.get(UPCAST_ENV) == "1":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    for p in model.parameters():
        p.requires_grad_(False)
    if gradient_checkpointing:
        # the layers' inputs must carry grad for the checkpointed recomputation to reach the adapters
        model.enable_input_require_grads()
        enable_checkpointing(model, cfg)
    return model


def upcast_parameters(model) -> int:
    """How many floating-point parameters of the base are held in fp32 (0 after prepare_kbit_base on a
    16-bit compute dtype; every embedding/norm/head tensor after peft's preparation)."""
    import torch

    return sum(p.numel() for p in model.parameters() if p.dtype == torch.float32 and not p.requires_grad)
