"""Qwen2-VL (Qwen2VLForConditionalGeneration, model_type "qwen2_vl") and Qwen2.5-VL ("qwen2_5_vl"): a ViT with 2-D rotary attention
(`model.visual`) ending in its projector, the PatchMerger (`model.visual.merger`: LayerNorm, then an
MLP over each 2x2 group of patch features), and a qwen2 decoder with multimodal rotary positions
(M-RoPE), which the model computes from `image_grid_thw` and the processor's `mm_token_type_ids`
(the collator passes both on with the pixels).

The projector sits inside the vision tower's module, so `model.visual` (frozen, 16-bit under QLoRA)
covers it and lora.train_projector trains `merger` alone. Qwen's files (and transformers 5's
save_pretrained, which writes that layout back: its conversion_mapping.py, reversed) name the
decoder `model.*` and the tower `visual.*`; the output head is tied to the embedding.

GGUF export is refused before any work: edgetune's converter has no qwen2vl decoder (M-RoPE) and
no writer for llama.cpp's Qwen2-VL projector. The merged HF folder chats and serves.
"""

from __future__ import annotations

from engine.vision.families import VisionFamily, register_family

QWEN2_VL_CHECKPOINT_NAMES = ((r"^visual\.", "model.visual."),
                             (r"^model\.(?!language_model\.|visual\.)", "model.language_model."))



def _qwen_vl(name: str, projector: str) -> VisionFamily:
    return register_family(VisionFamily(
        name, (name,), language_model="model.language_model", vision_modules=("model.visual",),
        projector_modules=("model.visual.merger",), checkpoint_names=QWEN2_VL_CHECKPOINT_NAMES,
        gguf_unsupported=f"edgetune's GGUF converter has no qwen2vl language-model architecture (multimodal rotary "
                         f"positions, M-RoPE) and no mmproj writer for llama.cpp's {projector} projector"))


QWEN2_VL = _qwen_vl("qwen2_vl", "Qwen2-VL (qwen2vl_merger)")
# Qwen2.5-VL: the same module layout and file names (transformers maps its classes onto Qwen2-VL's conversion);
# its tower has RMSNorm + gated-MLP blocks and window attention, which only the GGUF side would need to know
QWEN2_5_VL = _qwen_vl("qwen2_5_vl", "Qwen2.5-VL (qwen2.5vl_merger)")
