"""Gradient checkpointing, with the checkpointed layer inputs optionally kept in CPU RAM.

    train.gradient_checkpointing: true      recompute each decoder layer in backward; its input stays
                                            on the device (layers x tokens x hidden x 2 bytes)
    train.gradient_checkpointing: offload   the same, and each layer's saved input is copied to pinned
                                            CPU memory in forward and back in backward (Unsloth's
                                            "unsloth" checkpointing does the same on its backend)

The offload is transformers' own (`gradient_checkpointing_enable(offload=True)`: the non-reentrant
checkpoint runs under torch.autograd.graph.save_on_cpu, so the only tensors autograd saves outside
the recomputed region - the layer's inputs - are packed to host memory). On an 8B with max_len 2048
that frees 32 x 2048 x 4096 x 2 B = 0.5 GB of VRAM for two PCIe copies per layer and step. On a CPU
(or Apple's unified memory) the activations already live in RAM: offload has nothing to move, so
there the run checkpoints as with `true` and says so in a warning event.
"""

from __future__ import annotations

from typing import Optional

OFFLOAD = "offload"
OFFLOAD_DEVICES = ("cuda",)  # devices whose memory is not the host's: where moving activations frees anything


def wants_offload(cfg) -> bool:
    """The config asks for checkpointing with offloaded layer inputs."""
    return cfg.train.gradient_checkpointing == OFFLOAD


def offloads_on(cfg, device: str) -> bool:
    """Offloading actually happens for this run: asked for, and the device's memory is not the host's."""
    return wants_offload(cfg) and device in OFFLOAD_DEVICES


def offload_note(cfg, device: str) -> Optional[str]:
    """A warning for a run that asked for offload where it changes nothing (None otherwise)."""
    if not wants_offload(cfg) or device in OFFLOAD_DEVICES:
        return None
    return (f"train.gradient_checkpointing=offload on {device}: activations already live in host RAM, so there is "
            f"nothing to offload; the run uses plain gradient checkpointing (same memory and speed as `true`).")


def enable_checkpointing(model, cfg, offload: Optional[bool] = None) -> None:
    """Non-reentrant gradient checkpointing on `model`'s decoder layers, offloaded when the config asks for it
    and the model sits on a GPU (`offload` overrides that decision: the tests offload on CPU to compare
    gradients)."""
    if offload is None:
        device = next(model.parameters()).device.type
        offload = offloads_on(cfg, device)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False}, offload=bool(offload))
