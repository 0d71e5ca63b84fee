"""Llama family: Llama 2/3.x, SmolLM/SmolLM2, TinyLlama, Mistral (dense).

llama.cpp's llama graph applies rotary embeddings to interleaved pairs
(x0,x1),(x2,x3)... while HF Llama rotates the two halves of each head
(x0,x64),(x1,x65)... so the rows of q_proj and k_proj (and their biases) are
re-ordered per head: split each head's rows into two halves and interleave them.
"""

from __future__ import annotations

import gguf

from exporters.gguf.registry import Architecture, llama3_rope_factors, register_architecture


def interleave_rotary_rows(t, n_head: int):
    """Reorder the rows of a Q/K projection from HF 'halves' to llama.cpp 'pairs' layout."""
    rows = t.shape[0]
    return t.reshape(n_head, 2, rows // n_head // 2, *t.shape[1:]).swapaxes(1, 2).reshape(t.shape)


@register_architecture("LlamaForCausalLM", "MistralForCausalLM")
class LlamaArchitecture(Architecture):
    gguf_arch = gguf.MODEL_ARCH.LLAMA

    def transform(self, name, tensor):
        if name.endswith(("self_attn.q_proj.weight", "self_attn.q_proj.bias")):
            tensor = interleave_rotary_rows(tensor, self.n_head)
        elif name.endswith(("self_attn.k_proj.weight", "self_attn.k_proj.bias")):
            tensor = interleave_rotary_rows(tensor, self.n_head_kv)
        yield self.gguf_name(name), tensor

    def extra_tensors(self):
        rope = self.rope()
        if str(rope.get("rope_type", "")).lower() == "llama3":
            # Llama 3.1+ long-context scaling lives in a tensor, not in metadata.
            yield gguf.TENSOR_NAMES[gguf.MODEL_TENSOR.ROPE_FREQS] + ".weight", llama3_rope_factors(rope, self.head_dim)
