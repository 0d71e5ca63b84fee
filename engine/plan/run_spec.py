"""What the estimator needs to know about one run, resolved from a RunConfig and a device.

`run_spec(cfg, device, shape, batch_size, gradient_checkpointing)` turns the user-facing
config (with its 'auto' values) into plain numbers, following the choices the trainer
makes at run time (engine/train/device.py, model_setup.py, backends/): the compute
dtype per device, which weights are quantised, the backend, and how the loss is computed.
No torch: the CPU's bf16 support and the method's trainable parameters come from the same
torch-free functions the trainer calls (engine/train/device.py, engine/train/methods/), unsloth's
presence from importlib's finder.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, replace

from engine.plan.shape import Linear, ModelShape
from engine.train.activation_offload import offloads_on
from engine.train.host_embedding import wanted as host_embedding_wanted
from engine.train.device import dtype_for
from engine.train.methods import check_applies, facts_from_shape, get_method, resolved_load_in

DTYPE_BYTES = {"bf16": 2, "fp16": 2, "fp32": 4}


@dataclass(frozen=True)
class RunSpec:
    """One planned run, in the units the estimator works in."""

    shape: ModelShape
    method: str  # a name in engine/train/methods (lora, qlora, dora, ia3, prefix, full, freeze, ...)
    device: str  # cuda | cpu | mps
    backend: str  # hf | unsloth
    compute_bytes: int  # 2 (bf16/fp16) or 4 (fp32): activations and 16/32-bit weights
    base_format: str  # nf4 | fp4 | int8 | float (frozen base weights)
    double_quant: bool
    lora_r: int
    lora_modules: tuple[Linear, ...]  # adapted linears of one layer
    lora_dropout: float
    optimizer: str
    freeze_layers: int
    batch_size: int
    max_len: int
    gradient_checkpointing: bool
    loss_head: str  # full (logits materialised) | chunked (fused LM head + loss in tiles) | score (reward head)
    stage: str = "sft"
    sequences: int = 1  # sequences per sample: 2 for a preference pair (chosen + rejected in one batch)
    reference: str = "none"  # none | adapter-off (LoRA: the policy with its adapter disabled) | copy | precomputed
    trainable: int = 0  # trainable parameters, as the method's own `trainable` counts them
    trains_base: bool = False  # the method updates the model's own weights (fp32 master weights)
    virtual_tokens: int = 0  # soft-prompt tokens in front of every sequence
    method_activation_bytes: int = 0  # per token and layer, saved by the method's own modules (bottleneck adapters)
    offload_checkpoints: bool = False  # train.gradient_checkpointing=offload (engine/plan/checkpoint_offload.py)
    host_embedding: bool = False  # train.offload_embedding: the frozen input-embedding table stays in host RAM
    adapter_input_casts: bool = True  # peft copies each adapter's input to fp32 (off: model_setup.skip_adapter_input_casts)
    generations: int = 0  # online RL: answers sampled at once (their KV cache; engine/plan/rl_memory.py)
    reward_params: int = 0  # online RL: parameters of the reward-model runs scoring the answers
    images: int = 0  # a VLM: images per sample (engine/plan/vision_memory.py); 0 for a text model
    vision_lora: bool = False  # lora.vision_tower: LoRA on the vision encoder too
    projector_trains: bool = False  # lora.train_projector: the projector trains in full

    @property
    def tokens(self) -> int:
        """Tokens in one micro-batch: batch_size samples of up to max_len tokens (plus a soft prompt's virtual
        tokens, counted as real ones: an upper bound for prefix methods), each pair holding two sequences."""
        return self.batch_size * (self.max_len + self.virtual_tokens) * self.sequences

    def with_(self, **changes) -> "RunSpec":
        return replace(self, **changes)


def compute_dtype(requested: str, device: str) -> str:
    """quant.compute_dtype as the trainer resolves it (the same function: engine/train/device.py)."""
    return dtype_for(requested, device)


def _target_probe(name: str, device: str) -> tuple[bool, str]:
    """Can backend `name` run on the planned device (a plan may be for another machine: not whether it is
    installed here)."""
    if name == "hf":
        return True, "always available"
    return device == "cuda", f"{name} needs a CUDA/ROCm GPU"


def _installed_probe(name: str, device: str) -> tuple[bool, str]:
    """What 'auto' finds on this machine, without importing torch: on CUDA, is the package installed."""
    ok, why = _target_probe(name, device)
    if ok and name != "hf" and importlib.util.find_spec(name) is None:
        return False, f"{name} is not installed"
    return ok, why


def choose_backend(requested: str, device: str, method: str) -> str:
    """train.backend as the trainer resolves it (engine/train/backends.choose_backend, the same rule)."""
    from engine.errors import ConfigError
    from engine.train.backends import choose_backend as trainer_choice

    try:
        probe = _installed_probe if requested == "auto" else _target_probe
        return trainer_choice(requested, device, method, probe=probe)[0]
    except ConfigError:
        return "hf"  # a backend that cannot run there: the run fails before training; plan what would run


def base_format(cfg) -> str:
    load_in = resolved_load_in(cfg)
    return {"4bit": cfg.quant.quant_type, "8bit": "int8"}.get(load_in, "float")


# What each training stage adds to a run's memory: sequences per sample, and its reference model.
# dpo/kto compare against the start model; orpo/simpo are reference-free; rm replaces the LM head
# by a one-output score head. KTO's batch holds each completion and a mismatched one (its KL term).
STAGE_SEQUENCES = {"sft": 1, "dpo": 2, "orpo": 2, "simpo": 2, "kto": 2, "rm": 2}
REFERENCE_STAGES = ("dpo", "kto")


def reference_kind(cfg) -> str:
    """How the stage's reference log-probs are had: none, adapter-off, a frozen copy, or precomputed."""
    from engine.plan.rl_memory import RL_STAGES, rl_reference

    stage = getattr(cfg, "stage", "sft")
    if stage in RL_STAGES:
        return rl_reference(cfg)
    if stage not in REFERENCE_STAGES:
        return "none"
    if getattr(getattr(cfg, stage), "precompute_ref", False):
        return "precomputed"
    method = get_method(cfg.method)
    return "adapter-off" if method.saved_as == "peft" else "copy"  # peft can switch its adapter off


def run_spec(cfg, device: str, shape: ModelShape, batch_size: int, gradient_checkpointing: bool) -> RunSpec:
    """Resolve the config for `device`; batch size and checkpointing are given already resolved."""
    backend = choose_backend(cfg.train.backend, device, cfg.method)
    if getattr(cfg, "stage", "sft") == "rm":
        backend = "hf"  # the reward-model recipe runs on hf only
    method = get_method(cfg.method)
    check_applies(cfg, facts_from_shape(shape))  # what the trainer refuses before loading, the plan refuses too
    lora = "lora.target_modules" in method.options  # rank-r adapters beside linears: their activations are counted
    compute = compute_dtype(cfg.quant.compute_dtype, device)
    return RunSpec(
        shape=shape, method=cfg.method, device=device, backend=backend,
        compute_bytes=DTYPE_BYTES[compute],
        base_format=base_format(cfg), double_quant=bool(cfg.quant.double_quant),
        lora_r=cfg.lora.r if lora else 0,
        lora_modules=tuple(shape.modules(cfg.lora.target_modules)) if lora else (),
        lora_dropout=cfg.lora.dropout if lora else 0.0,
        optimizer=cfg.optim.optimizer, freeze_layers=cfg.train.freeze_layers,
        batch_size=int(batch_size), max_len=int(cfg.sequence.max_len),
        gradient_checkpointing=bool(gradient_checkpointing),
        # On CUDA both backends compute the loss in tiles (TRL's fused LM head, Unsloth's fused
        # cross-entropy); elsewhere the model's own loss materialises the full logits.
        loss_head="score" if getattr(cfg, "stage", "sft") == "rm" else "chunked" if device == "cuda" else "full",
        stage=getattr(cfg, "stage", "sft"), sequences=STAGE_SEQUENCES.get(getattr(cfg, "stage", "sft"), 1),
        reference=reference_kind(cfg), trainable=method.trainable(shape, cfg) + (vision_lora_params(shape, cfg) if lora else 0),
        trains_base=method.trains_base,
        virtual_tokens=method.virtual_tokens(cfg), method_activation_bytes=method.activation_bytes(shape, cfg),
        offload_checkpoints=offloads_on(cfg, device),
        host_embedding=(host_embedding_wanted(cfg, device) and not shape.tied_embeddings and cfg.dist.strategy == "ddp"
                        and not method.virtual_tokens(cfg) and not method.trains_base),
        # the hf backend skips peft's input casts for these methods when the trainer autocasts (engine/train/backends/hf.py)
        adapter_input_casts=not (method.autocast_inputs and compute in ("bf16", "fp16")),
    ).with_(**rl_fields(cfg, batch_size), **vision_fields(cfg, shape, lora))


def vision_lora_params(shape: ModelShape, cfg) -> int:
    """A VLM's trainable vision side (engine/plan/vision_memory.py)."""
    from engine.plan.vision_memory import vision_lora_params as params

    return params(shape, cfg)


def vision_fields(cfg, shape: ModelShape, lora: bool) -> dict:
    """A VLM's images per sample and trainable vision side (engine/plan/vision_memory.py); empty for text models."""
    from engine.plan.vision_memory import vision_fields as fields

    return fields(cfg, shape, lora)


def rl_fields(cfg, batch_size: int) -> dict:
    """Online RL's sampling and reward models (engine/plan/rl_memory.py); empty for other stages."""
    from engine.plan.rl_memory import rl_fields as fields

    return fields(cfg, batch_size)
