"""Shapes of popular open models, so `engine plan` works offline for models not yet downloaded.

Each entry is an excerpt of the model's config.json on the Hugging Face hub (the fields
memory depends on) and is parsed by the same `shape_from_config` as a local folder.
Instruct/chat/base variants of one size share a shape, so lookups ignore those suffixes:
"meta-llama/Llama-3.1-8B-Instruct", "unsloth/Meta-Llama-3.1-8B-bnb-4bit" and "llama-3.1-8b"
all find "llama-3.1-8b".
"""

from __future__ import annotations

import difflib
import re
from typing import Optional

from engine.plan.shape import ModelShape, shape_from_config


def _llama(h, i, layers, heads, kv, vocab, tied, head_dim=None, model_type="llama", **extra) -> dict:
    cfg = {"model_type": model_type, "hidden_size": h, "intermediate_size": i, "num_hidden_layers": layers,
           "num_attention_heads": heads, "num_key_value_heads": kv, "vocab_size": vocab, "tie_word_embeddings": tied}
    if head_dim:
        cfg["head_dim"] = head_dim
    cfg.update(extra)
    return cfg


_SIGLIP_B16_512 = {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "num_attention_heads": 12,
                   "patch_size": 16, "image_size": 512}
_SMOLVLM_SPLIT = {"do_image_splitting": True, "size": {"longest_edge": 2048}, "max_image_size": {"longest_edge": 512}}

# canonical name -> config.json excerpt (values from each model's config.json on the hub)
CATALOG: dict[str, dict] = {
    # SmolLM2 (HuggingFaceTB): the bundled default is the 135M instruct model
    "smollm2-135m": _llama(576, 1536, 30, 9, 3, 49152, True),
    "smollm2-360m": _llama(960, 2560, 32, 15, 5, 49152, True),
    "smollm2-1.7b": _llama(2048, 8192, 24, 32, 32, 49152, True),
    # Llama 3.x (meta-llama)
    "llama-3.2-1b": _llama(2048, 8192, 16, 32, 8, 128256, True, head_dim=64),
    "llama-3.2-3b": _llama(3072, 8192, 28, 24, 8, 128256, True, head_dim=128),
    "llama-3.1-8b": _llama(4096, 14336, 32, 32, 8, 128256, False),
    "llama-3-8b": _llama(4096, 14336, 32, 32, 8, 128256, False),
    "llama-2-7b": _llama(4096, 11008, 32, 32, 32, 32000, False),
    # Mistral
    "mistral-7b-v0.3": _llama(4096, 14336, 32, 32, 8, 32768, False, model_type="mistral"),
    "mistral-7b-v0.1": _llama(4096, 14336, 32, 32, 8, 32000, False, model_type="mistral"),
    # Qwen2.5 (qkv projections carry a bias)
    "qwen2.5-0.5b": _llama(896, 4864, 24, 14, 2, 151936, True, model_type="qwen2"),
    "qwen2.5-1.5b": _llama(1536, 8960, 28, 12, 2, 151936, True, model_type="qwen2"),
    "qwen2.5-3b": _llama(2048, 11008, 36, 16, 2, 151936, True, model_type="qwen2"),
    "qwen2.5-7b": _llama(3584, 18944, 28, 28, 4, 152064, False, model_type="qwen2"),
    "qwen2.5-14b": _llama(5120, 13824, 48, 40, 8, 152064, False, model_type="qwen2"),
    # Qwen3 (explicit head_dim 128)
    "qwen3-0.6b": _llama(1024, 3072, 28, 16, 8, 151936, True, head_dim=128, model_type="qwen3"),
    "qwen3-1.7b": _llama(2048, 6144, 28, 16, 8, 151936, True, head_dim=128, model_type="qwen3"),
    "qwen3-4b": _llama(2560, 9728, 36, 32, 8, 151936, True, head_dim=128, model_type="qwen3"),
    "qwen3-8b": _llama(4096, 12288, 36, 32, 8, 151936, False, head_dim=128, model_type="qwen3"),
    "qwen3-14b": _llama(5120, 17408, 40, 40, 8, 151936, False, head_dim=128, model_type="qwen3"),
    # Gemma 2 / 3 (google): 256k vocabularies, head_dim 256; Gemma 3 >= 4B loads a vision tower too
    "gemma-2-2b": _llama(2304, 9216, 26, 8, 4, 256000, True, head_dim=256, model_type="gemma2"),
    "gemma-2-9b": _llama(3584, 14336, 42, 16, 8, 256000, True, head_dim=256, model_type="gemma2"),
    "gemma-3-1b": _llama(1152, 6912, 26, 4, 1, 262144, True, head_dim=256, model_type="gemma3_text"),
    "gemma-3-4b": {"model_type": "gemma3", "text_config": _llama(2560, 10240, 34, 8, 4, 262208, True, head_dim=256,
                                                                  model_type="gemma3_text")},
    "gemma-3-12b": {"model_type": "gemma3", "text_config": _llama(3840, 15360, 48, 16, 8, 262208, True, head_dim=256,
                                                                   model_type="gemma3_text")},
    # SmolVLM (HuggingFaceTB; Idefics3): SigLIP-B/16 at 512 px + pixel shuffle 4 + a SmolLM2 LM. `image_processor` is
    # the preprocessor_config.json excerpt a folder would have: images split into up to 4x4 crops + a global view.
    "smolvlm-256m": {"model_type": "idefics3", "scale_factor": 4, "vision_config": _SIGLIP_B16_512,
                     "text_config": _llama(576, 1536, 30, 9, 3, 49280, False), "image_processor": _SMOLVLM_SPLIT},
    "smolvlm-500m": {"model_type": "idefics3", "scale_factor": 4, "vision_config": _SIGLIP_B16_512,
                     "text_config": _llama(960, 2560, 32, 15, 5, 49280, False), "image_processor": _SMOLVLM_SPLIT},
    # Phi-3 / Phi-4 (microsoft): fused qkv_proj and gate_up_proj
    "phi-3-mini": _llama(3072, 8192, 32, 32, 32, 32064, False, model_type="phi3"),
    "phi-3.5-mini": _llama(3072, 8192, 32, 32, 32, 32064, False, model_type="phi3"),
    "phi-3-medium": _llama(5120, 17920, 40, 40, 10, 32064, False, model_type="phi3"),
    "phi-4-mini": _llama(3072, 8192, 32, 24, 8, 200064, True, model_type="phi3"),
    "phi-4": _llama(5120, 17920, 40, 40, 10, 100352, False, model_type="phi3"),
}

# Words that name a variant of the same shape (chat tuning, packaging, quantised uploads).
_VARIANT = re.compile(
    r"-(instruct|it|chat|base|hf|bnb-4bit|unsloth|4k|8k|128k|gguf|awq|gptq|fp16|bf16|q4_k_m|q8_0|\d{4})(?=-|$)"
)


def normalise(spec: str) -> str:
    """'meta-llama/Meta-Llama-3.1-8B-Instruct' -> 'llama-3.1-8b'."""
    name = spec.strip().rstrip("/").split("/")[-1].lower().replace("_", "-")
    name = re.sub(r"\.gguf$", "", name)
    name = re.sub(r"^meta-", "", name)
    prev = None
    while prev != name:
        prev, name = name, _VARIANT.sub("", name)
    return name


def lookup(spec: str) -> Optional[ModelShape]:
    """The catalog shape for a model name or hub id, or None."""
    key = normalise(spec)
    if key in CATALOG:
        entry = CATALOG[key]
        return shape_from_config(entry, name=key, source="catalog", processor=entry.get("image_processor"))
    return None


def suggestions(spec: str) -> list[str]:
    """Catalog names close to `spec`, for an error message."""
    return difflib.get_close_matches(normalise(spec), list(CATALOG), n=3, cutoff=0.5)
