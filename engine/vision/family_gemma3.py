"""Gemma 3 (Gemma3ForConditionalGeneration, model_type "gemma3"): a SigLIP vision tower, a projector
(average pool to mm_tokens_per_image tokens, soft-embedding RMSNorm, input projection) and a
gemma3_text decoder.

transformers 5 keeps them at model.vision_tower, model.multi_modal_projector and
model.language_model (the output head, lm_head, is tied to the embedding); the safetensors
files keep Google's names (language_model.model.*, vision_tower.vision_model.*,
multi_modal_projector.*), which transformers renames on load and back on save. Gemma 3 attends
bidirectionally inside each image's tokens during training: its processor marks them in
token_type_ids, which the collator passes on with the pixels. A text-only Gemma 3
(gemma3_text, Gemma3ForCausalLM) has no vision_config and keeps the text path.
"""

from __future__ import annotations

from engine.vision.families import LLAVA_CHECKPOINT_NAMES, VisionFamily, register_family

GEMMA3 = register_family(VisionFamily(
    "gemma3", ("gemma3",), language_model="model.language_model", vision_modules=("model.vision_tower",),
    projector_modules=("model.multi_modal_projector",), llama_cpp_projector="gemma3",
    # Google's files (and transformers 5's save_pretrained, which writes that layout back) name them as LLaVA's
    checkpoint_names=LLAVA_CHECKPOINT_NAMES))
