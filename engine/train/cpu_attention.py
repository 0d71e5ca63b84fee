"""SDPA for training in bf16/fp16 on a CPU: the math kernel for short sequences, the flash kernel for long ones.

PyTorch's CPU flash-attention kernel is the better choice in fp32 and for long sequences, but in
bf16 its backward pass has a large fixed cost: measured on this project's 2-core Xeon (AMX),
torch 2.13, 9 heads x 64 dims, forward + backward:

    batch x length     flash      math
    8 x 36 (causal)    9.0 ms     2.4 ms     (the quickstart's batches)
    4 x 128           10.9 ms     6.9 ms
    4 x 256           17.2 ms    21.6 ms
    1 x 1024          23.8 ms   113.0 ms

(fp32, 8 x 36: flash 1.4 ms, math 2.3 ms.) In a bf16 LoRA step on SmolLM2 the flash backward was
22% of the step. So this attention function, registered with transformers' AttentionInterface,
runs transformers' own SDPA forward and only picks the kernel per call: math when the keys are
at most MATH_MAX_KV long (where its O(length^2) scores are small), flash otherwise. Results are
the same attention either way (both are exact kernels; they differ in rounding only).
"""

from __future__ import annotations

NAME = "edgetune_cpu_sdpa"
MATH_MAX_KV = 192  # between the measured crossover points (128: math faster, 256: flash faster)


def attention_for(device: str, dtype_name: str) -> str:
    """The attn_implementation to load a model with for training on `device` in `dtype_name`."""
    if device == "cpu" and dtype_name in ("bf16", "fp16"):
        register()
        return NAME
    return "sdpa"


def register() -> None:
    """Add NAME to transformers' attention and mask registries (idempotent)."""
    from transformers import AttentionInterface, AttentionMaskInterface
    from transformers.masking_utils import sdpa_mask

    if NAME in AttentionInterface._global_mapping:
        return
    AttentionInterface.register(NAME, _forward)
    AttentionMaskInterface.register(NAME, sdpa_mask)


def _forward(module, query, key, value, attention_mask, **kwargs):
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if key.shape[2] <= MATH_MAX_KV and query.device.type == "cpu" and query.dtype in (torch.bfloat16, torch.float16):
        with sdpa_kernel(SDPBackend.MATH):
            return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
