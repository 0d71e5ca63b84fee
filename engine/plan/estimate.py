"""Peak training memory of one run, as a sum of named parts. Pure arithmetic: no torch.

    parts = estimate(spec)            # [Part("base weights", 5.31, "..."), ...]
    total = sum(p.gb for p in parts)

Each part is a small function registered with `@term`, in the order they are printed.
Every term says where its numbers come from; they were checked against the saved-tensor
accounting of real training steps (torch.autograd.graph.saved_tensors_hooks) and against
peak RSS on CPU (benchmarks/plan_accuracy.py).

The peak is reached at the start of the backward pass: every weight, adapter, gradient and
optimizer state lives for the whole run, and on top of them sit the activations saved by the
forward pass plus the loss's vocabulary-sized buffers. GB means 2**30 bytes throughout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from engine.plan.run_spec import RunSpec

GB = 2**30

# --- constants, each with its source ------------------------------------------------------

# bitsandbytes 4-bit: two weights per byte, plus one absmax per 64-weight block: fp32 (4 B) without
# double quantisation, or 8-bit with one fp32 second-level constant per 256 blocks with it.
# 0.5 + 4/64 = 0.5625 B/param; 0.5 + 1/64 + 4/(64*256) = 0.5159 B/param (QLoRA paper, section 2).
NF4_BYTES = 0.5 + 4 / 64
NF4_DQ_BYTES = 0.5 + 1 / 64 + 4 / (64 * 256)
# LLM.int8: int8 weights and one fp32 scale per output row (the scales are counted separately).
INT8_BYTES = 1.0
# Optimizer state per trainable parameter: AdamW keeps two fp32 moments (8 B); bitsandbytes'
# 8-bit AdamW keeps them in 8-bit blocks (2 B); the paged variant is the same size, just evictable.
OPTIMIZER_BYTES = {"adamw_torch": 8, "adamw_8bit": 2, "paged_adamw_8bit": 2}
# peft creates LoRA/DoRA weights in fp32 (autocast_adapter_dtype=True) whatever the base dtype.
ADAPTER_BYTES = 4
# TRL's fused LM head (trl/kernels/chunked_logprob.py) projects 4096 tokens x 32768 vocabulary
# entries at a time; Unsloth's fused cross-entropy tiles similarly.
LOSS_TILE_TOKENS, LOSS_TILE_VOCAB = 4096, 32768
# CUDA context, cuBLAS workspaces and kernels loaded by torch + bitsandbytes: 0.4-0.6 GB on
# recent drivers with lazy module loading; PyTorch's caching allocator rounds blocks up and
# keeps freed ones, typically 5-15% above the live tensors.
CUDA_CONTEXT_GB = 0.5
CUDA_ALLOCATOR_SLACK = 0.10
# Apple's Metal context is small, but the python process lives in the same unified memory.
MPS_CONTEXT_GB = 0.5
# A CPU training process before it loads a model: python + torch + transformers + peft + trl +
# datasets imported, tokenizer and data loaded (RSS measured on Linux: 0.49 GB after imports).
CPU_PROCESS_GB = 0.52


@dataclass(frozen=True)
class Part:
    """One named share of the peak, in GB, with a line saying what it is."""

    name: str
    gb: float
    note: str = ""


Term = Callable[[RunSpec], Optional[Part]]
TERMS: list[Term] = []


def term(fn: Term) -> Term:
    """Decorator: add a part to the estimate (printed in registration order)."""
    TERMS.append(fn)
    return fn


def estimate(spec: RunSpec) -> list[Part]:
    """Every part of the peak memory of `spec` (parts that do not apply are left out)."""
    parts = []
    for fn in TERMS:
        part = fn(spec)
        if part is not None:
            parts.append(part)
    return parts


def total_gb(parts: list[Part]) -> float:
    return sum(p.gb for p in parts)


# --- helpers ------------------------------------------------------------------------------

def _b(n: float) -> str:
    """Parameter count for a note: 6.98B, 41.9M, 4.9M."""
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M"


def _dtype_name(nbytes: int) -> str:
    return {2: "16-bit", 4: "fp32"}[nbytes]


def quant_bytes(spec: RunSpec) -> float:
    """Bytes per quantised linear weight for the base format."""
    if spec.base_format in ("nf4", "fp4"):
        return NF4_DQ_BYTES if spec.double_quant else NF4_BYTES
    return INT8_BYTES


def unquantised_bytes(spec: RunSpec) -> int:
    """Bytes per parameter of the weights that stay in floating point."""
    if spec.trains_base:
        return 4  # the trainer keeps fp32 master weights for methods that update the base
    # A quantised base keeps its embeddings, head and norms in the compute dtype on both backends:
    # engine/train/kbit_prep.py skips peft's fp32 upcast of them (Unsloth never did it).
    return spec.compute_bytes


def trainable_params(spec: RunSpec) -> int:
    """The method's own count (engine/train/methods: the same function the tests check against the model)."""
    return spec.trainable


def trainable_bytes(spec: RunSpec) -> int:
    return 4 if spec.trains_base else ADAPTER_BYTES


def _lora_extras(spec: RunSpec, keep_a_outputs: bool, autocast_copies: bool) -> float:
    """Per-token bytes LoRA adds inside one layer (see layer_activation_bytes)."""
    extra = 0.0
    for _, n_in, _ in spec.lora_modules:
        if keep_a_outputs:
            extra += ADAPTER_BYTES * spec.lora_r
        if autocast_copies and spec.adapter_input_casts and ADAPTER_BYTES > spec.compute_bytes:
            extra += spec.compute_bytes * n_in
        if spec.lora_dropout > 0:
            extra += (ADAPTER_BYTES + 1) * n_in
    return extra


LayerBytes = Callable[[RunSpec], float]
LAYER_RECIPES: dict[str, LayerBytes] = {}


def recipe(backend: str):
    """Decorator: how many bytes per token one decoder layer saves for backward, per backend."""

    def deco(fn: LayerBytes) -> LayerBytes:
        LAYER_RECIPES[backend] = fn
        return fn

    return deco


@recipe("hf")
def hf_layer_bytes(spec: RunSpec) -> float:
    """transformers + peft: what autograd keeps per token in one decoder layer.

    Counted from the modelling code and checked with saved_tensors_hooks on SmolLM2 (40.4 kB
    per token per layer measured vs 42.7 kB from this formula at fp32, LoRA r=16 all-linear):
      norms: each RMSNorm keeps its input upcast to fp32 and its output (the next linears' input)
      attention: rotated q and k, v, the SDPA output and o_proj's input (flash/efficient SDPA
        keeps only a per-row logsumexp, not the seq x seq scores)
      MLP: gate and up outputs, the activation's output and down_proj's input (4 x intermediate)
      LoRA: each adapter's r-wide A output; an fp32 adapter on a 16-bit base under autocast also
        keeps a 16-bit copy of its input unless peft's input cast is skipped (the LoRA family on
        hf: model_setup.skip_adapter_input_casts), and LoRA dropout keeps its output and a 1-byte mask.
    """
    s, c = spec.shape, spec.compute_bytes
    q, kv = s.num_heads * s.head_dim, s.num_kv_heads * s.head_dim
    norms = s.norms_per_layer * (4 + c) * s.hidden_size
    attention = c * (3 * q + 2 * kv)
    mlp = 4 * c * s.intermediate_size
    return norms + attention + mlp + _lora_extras(spec, keep_a_outputs=True, autocast_copies=True)


@recipe("unsloth")
def unsloth_layer_bytes(spec: RunSpec) -> float:
    """Unsloth's hand-written autograd functions (unsloth/kernels/fast_lora.py) keep less:
    LoRA_QKV and LoRA_MLP save only their input X and, for the MLP, the gate and up outputs
    (e, g; the SwiGLU product is recomputed in backward); LoRA A outputs are recomputed; its
    RMSNorm keeps its input in the compute dtype. LoRA dropout > 0 falls back to peft's path."""
    s, c = spec.shape, spec.compute_bytes
    q, kv = s.num_heads * s.head_dim, s.num_kv_heads * s.head_dim
    norms = s.norms_per_layer * 2 * c * s.hidden_size
    attention = c * (3 * q + 2 * kv)
    mlp = 2 * c * s.intermediate_size
    return norms + attention + mlp + _lora_extras(spec, keep_a_outputs=False, autocast_copies=False)


def layer_activation_bytes(spec: RunSpec) -> float:
    """Bytes one decoder layer saves for backward, per token, without checkpointing."""
    return LAYER_RECIPES[spec.backend](spec)


def layers_with_saved_activations(spec: RunSpec) -> int:
    """Layers whose activations autograd keeps: freeze trains only the top N, so nothing below is saved."""
    if spec.method == "freeze":
        return min(spec.freeze_layers, spec.shape.num_layers)
    return spec.shape.num_layers


# --- the terms ----------------------------------------------------------------------------

@term
def base_weights(spec: RunSpec) -> Part:
    s = spec.shape
    vision = s.vision.total_params if s.vision else 0  # a VLM's encoder + projector: their own part (vision_memory.py)
    other = s.embedding_params + s.small_params + s.extra_frozen_params - vision
    ub = unquantised_bytes(spec)
    if spec.base_format == "float":
        n = s.total_params - vision
        return Part("base weights", n * ub / GB, f"{_b(n)} {'LM ' if vision else ''}params in {_dtype_name(ub)}")
    qb = quant_bytes(spec)
    label = spec.base_format + ("+double-quant" if spec.double_quant and spec.base_format != "int8" else "")
    host = s.vocab_size * s.hidden_size if spec.host_embedding else 0  # engine/train/host_embedding.py
    gb = (s.linear_params * qb + (other - host) * ub) / GB
    if spec.base_format == "int8":  # one fp32 scale per output row of every linear
        gb += sum(o for _, _, o in s.linear_modules) * s.num_layers * 4 / GB
    where = f"; the {_b(host)}-param input embedding stays in host RAM" if host else ""
    return Part("base weights", gb, f"{_b(s.linear_params)} linear params in {label} ({qb:.3f} B/param) + "
                                    f"{_b(other - host)} embedding/norm params in {_dtype_name(ub)}{where}")


@term
def checkpoint_pages(spec: RunSpec) -> Optional[Part]:
    """On CPU the safetensors file is memory-mapped; quantising leaves the mapping in place while the un-quantised
    embedding/norms are views into it, which they are when the compute dtype is the file's own.

    Measured on SmolLM2-135M QLoRA with an fp32 compute dtype: 516 MB of the 538 MB fp32 file stays resident
    (Shared_Clean in /proc/self/smaps_rollup). In bf16 those weights are converted copies (engine/train/kbit_prep.py
    keeps them so), nothing holds the mapping, and the measured peak is the planned one without this term
    (benchmarks/plan_accuracy.py: 1.04 GB measured vs 1.01 planned, where this term added 0.50).
    A float base of the file's own dtype *is* the mapping (counted once, as base weights).
    """
    if spec.device != "cpu" or spec.base_format == "float":
        return None
    s = spec.shape
    if s.checkpoint_bytes != unquantised_bytes(spec):
        return None  # converted to the compute dtype: the mapping is released after loading
    # the un-quantised embeddings/norms are views into the same pages: counted once, as base weights
    file_bytes = s.linear_params * s.checkpoint_bytes
    return Part("checkpoint file pages", file_bytes / GB, "memory-mapped safetensors kept resident after quantising")


@term
def autocast_weight_copies(spec: RunSpec) -> Optional[Part]:
    """Methods that train fp32 master weights under 16-bit autocast: autocast caches a 16-bit cast of
    every trainable weight for the forward pass, and backward keeps it until the layer's gradient."""
    if not spec.trains_base or spec.compute_bytes != 2:
        return None
    n = trainable_params(spec)
    return Part("16-bit weight copies", n * 2 / GB, f"autocast's 16-bit casts of {_b(n)} trainable fp32 weights")


@term
def adapter_weights(spec: RunSpec) -> Optional[Part]:
    if spec.trains_base:
        return None
    n = trainable_params(spec)
    shape = f" (r={spec.lora_r}, {len(spec.lora_modules)} linears/layer)" if spec.lora_modules else ""
    return Part("adapter weights", n * ADAPTER_BYTES / GB, f"{_b(n)} {spec.method} params{shape}, fp32")


@term
def gradients(spec: RunSpec) -> Part:
    n = trainable_params(spec)
    return Part("gradients", n * trainable_bytes(spec) / GB, f"one fp32 gradient per trainable param ({_b(n)})")


@term
def optimizer_state(spec: RunSpec) -> Part:
    n = trainable_params(spec)
    per = OPTIMIZER_BYTES[spec.optimizer]
    return Part("optimizer state", n * per / GB, f"{spec.optimizer}: {per} B/param")


@term
def activations(spec: RunSpec) -> Part:
    """Saved activations at the start of backward (plus the layer being recomputed, with checkpointing).

    With gradient checkpointing each layer keeps only its input (c x hidden per token) and the
    backward pass recomputes one layer at a time; Unsloth's checkpointing and hf's
    train.gradient_checkpointing=offload move those inputs to CPU RAM (engine/plan/checkpoint_offload.py),
    so only the recomputed layer stays on the GPU. The embedding output and final norm add two
    hidden-sized tensors.
    """
    from engine.plan.checkpoint_offload import offloads_layer_inputs, on_device_layer_input_bytes

    s, t, c = spec.shape, spec.tokens, spec.compute_bytes
    per_layer = layer_activation_bytes(spec) * t
    layers = layers_with_saved_activations(spec)
    edges = (c + 4) * s.hidden_size * t
    if spec.gradient_checkpointing:
        inputs = on_device_layer_input_bytes(spec, layers)
        gb = (inputs + per_layer + edges) / GB
        how = (f"checkpointed: {layers} layer inputs" + (" offloaded to CPU" if offloads_layer_inputs(spec) else "")
               + " + 1 layer recomputed")
    else:
        gb = (layers * per_layer + edges) / GB
        how = f"{layers} layers x {per_layer / t / 1024:.1f} kB/token"
    if spec.method == "dora":
        # DoRA recomputes each adapted weight's norm from W + BA: one fp32 weight-sized tensor per
        # linear is kept for backward (per layer, or for one layer when checkpointing).
        weights = sum(i * o for _, i, o in spec.lora_modules) * 4
        gb += weights * (1 if spec.gradient_checkpointing else layers) / GB
        how += " + DoRA weight norms"
    rows = f"{spec.batch_size} x {spec.sequences} sequences" if spec.sequences > 1 else f"{spec.batch_size}"
    return Part("activations", gb, f"{how}; {rows} x {spec.max_len} tokens")


@term
def method_activations(spec: RunSpec) -> Optional[Part]:
    """What a method's own modules keep for backward (bottleneck adapters: their fp32 input, down output and
    GELU output per token), per layer, or for the one recomputed layer with checkpointing."""
    if not spec.method_activation_bytes:
        return None
    layers = 1 if spec.gradient_checkpointing else layers_with_saved_activations(spec)
    per_token = spec.method_activation_bytes
    return Part("method activations", per_token * spec.tokens * layers / GB,
                f"{spec.method}: {per_token / 1024:.1f} kB/token/layer in its own modules")


@term
def logits_and_loss(spec: RunSpec) -> Part:
    """The vocabulary-sized buffers of the loss.

    Full logits (the model's own loss, used on CPU and MPS): during the loss backward three fp32
    tokens x vocab buffers are alive at once (the log-softmax kept for backward, its incoming
    gradient and its outgoing gradient); the forward's 16-bit logits and their fp32 upcast are
    already freed by then. Chunked (CUDA): one 16-bit 4096 x 32768 tile plus the fp32 gradient
    of the final hidden states.
    """
    s, t = spec.shape, spec.tokens
    if spec.loss_head == "score":
        return Part("logits and loss", 4 * t * s.hidden_size / GB, "one-output score head: only the last hidden states' gradient")
    if spec.loss_head == "full":
        return Part("logits and loss", 12 * t * s.vocab_size / GB, f"3 fp32 buffers of {t} tokens x {s.vocab_size} vocab")
    tile = min(t, LOSS_TILE_TOKENS) * min(s.vocab_size, LOSS_TILE_VOCAB) * spec.compute_bytes
    return Part("logits and loss", (tile + 4 * t * s.hidden_size) / GB, "fused LM head + loss, computed in tiles")


@term
def reference_model(spec: RunSpec) -> Optional[Part]:
    """DPO/KTO's reference: with LoRA the policy with its adapter disabled (no extra weights; its no-grad
    forward runs before the policy's and frees its activations, so it adds nothing to the peak); with
    full/freeze fine-tuning a frozen fp32 copy of the start model; precomputed: none."""
    if spec.reference != "copy":
        return None
    n = spec.shape.total_params
    # TRL loads the copy from the start model's folder with from_pretrained's default dtype: fp32
    return Part("reference model", n * 4 / GB, f"frozen copy of the start model for {spec.stage} ({_b(n)} params, fp32)")


@term
def framework_overhead(spec: RunSpec) -> Part:
    if spec.device == "cpu":
        return Part("framework overhead", CPU_PROCESS_GB, "python + torch + transformers + peft + trl, tokenizer and data")
    from engine.plan.vision_memory import vision_activations

    dynamic = activations(spec).gb + logits_and_loss(spec).gb + getattr(vision_activations(spec), "gb", 0.0)
    gb = dynamic * CUDA_ALLOCATOR_SLACK
    note = f"allocator slack {CUDA_ALLOCATOR_SLACK:.0%} of activations"
    if spec.base_format in ("nf4", "fp4", "int8"):
        # bitsandbytes de-quantises one linear at a time into a compute-dtype buffer and frees it after the
        # matmul: forward (bitsandbytes/backends/cuda/ops.py, dequant + F.linear for more than a few tokens) and
        # backward (autograd/_functions.py MatMul4Bit.backward) never hold two, so one buffer of the largest linear.
        largest = max(i * o for _, i, o in spec.shape.linear_modules)
        gb += largest * spec.compute_bytes / GB
        note += " + de-quantisation buffer"
    context = CUDA_CONTEXT_GB if spec.device == "cuda" else MPS_CONTEXT_GB
    return Part("framework overhead", gb + context, f"{'CUDA' if spec.device == 'cuda' else 'Metal'} context {context} GB + {note}")


from engine.plan import rl_memory  # noqa: E402,F401  registers online RL's terms (sampling cache, reward models)
from engine.plan import vision_memory  # noqa: E402,F401  registers a VLM's terms (vision weights, pixels, activations)
