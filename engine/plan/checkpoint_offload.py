"""Where gradient checkpointing keeps each decoder layer's input: on the device, or in host RAM.

With checkpointing a layer keeps only its input (compute dtype x hidden per token) until the
backward pass recomputes it. `train.gradient_checkpointing=offload` on the hf backend
(engine/train/activation_offload.py: transformers' save_on_cpu checkpointing) and Unsloth's own
"unsloth" checkpointing copy those inputs to pinned CPU memory, so on a GPU they leave the
device's budget and cost host RAM instead; on a CPU or Apple's unified memory there is nothing to
move (the trainer says so and checkpoints as with `true`). No torch.
"""

from __future__ import annotations

from engine.plan.run_spec import RunSpec


def offloads_layer_inputs(spec: RunSpec) -> bool:
    """The checkpointed layer inputs of this run live in host RAM, not in the planned device's memory."""
    if not spec.gradient_checkpointing or spec.device != "cuda":
        return False
    return spec.backend == "unsloth" or spec.offload_checkpoints


def layer_input_bytes(spec: RunSpec, layers: int) -> float:
    """Bytes of the inputs that `layers` checkpointed layers keep for the recomputation."""
    return layers * spec.compute_bytes * spec.shape.hidden_size * spec.tokens


def on_device_layer_input_bytes(spec: RunSpec, layers: int) -> float:
    """The share of the checkpointed layer inputs the device itself holds (0 when they are offloaded)."""
    return 0.0 if offloads_layer_inputs(spec) else layer_input_bytes(spec, layers)
