"""Build a tiny random Qwen2-VL vision-language model (Qwen2VLForConditionalGeneration): for tests.

    python -m engine.vision.tiny_vlm /tmp/tiny-qwen2-vl --family qwen2_vl
    python -m engine.vision.tiny_vlm /tmp/tiny-qwen2.5-vl --family qwen2_5_vl   # Qwen2.5-VL (VERSIONS below)

Qwen2-VL's parts at toy size, all random: its ViT (`model.visual`: a Conv3d patch embedding over
2 frames x patch_size² pixels, 2-D rotary attention blocks) whose PatchMerger
(`model.visual.merger`, the projector) folds each 2x2 patch group into one LM token, and a 2-layer
64-wide qwen2_vl decoder with multimodal rotary positions (M-RoPE: temporal / height / width
sections of each head's rotary dims; the model computes those positions from `image_grid_thw`).
No Qwen tokenizer can be downloaded on an offline machine, so the tokenizer is the bundled
SmolLM2's (ChatML already) with Qwen2-VL's vision tokens added: <|vision_start|>, <|image_pad|>,
<|vision_end|> (and <|video_pad|>, which Qwen2VLProcessor looks up). The chat template is ChatML
with `<|vision_start|><|image_pad|><|vision_end|>` for an image part, as Qwen2-VL's; the processor
expands the one <|image_pad|> into grid_t*grid_h*grid_w / merge_size² of them. The image processor
(Qwen2VLImageProcessorPil: no torchvision) resizes every picture to min_pixels..max_pixels (32x32 by
default), so a 32 px image is a 4x4 patch grid = 4 image tokens.

Qwen2.5-VL (Qwen2_5_VLForConditionalGeneration) is the same layout and processor with another
tower: RMSNorm + gated-MLP blocks, window attention except in `fullatt_block_indexes`, and an
explicit `out_hidden_size`; VERSIONS holds what differs.
"""

from __future__ import annotations

from pathlib import Path

VISION_TOKENS = ["<|vision_start|>", "<|image_pad|>", "<|vision_end|>", "<|video_pad|>"]

# ChatML (SmolLM2's and Qwen2-VL's format) with Qwen2-VL's image part
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _qwen2_vl_tower(hidden: int, patch_size: int, merge: int, layers: int) -> dict:
    return dict(depth=layers, embed_dim=hidden // 2, hidden_size=hidden, mlp_ratio=2, num_heads=4, patch_size=patch_size,
                spatial_merge_size=merge, temporal_patch_size=2)


def _qwen2_5_vl_tower(hidden: int, patch_size: int, merge: int, layers: int) -> dict:
    # windows of one merged patch (window_size is in pixels: a 32 px image is 4 windows, so the windowed blocks
    # differ from full attention); the last block attends over the whole image
    return dict(depth=layers, hidden_size=hidden // 2, intermediate_size=hidden, out_hidden_size=hidden, num_heads=4,
                patch_size=patch_size, spatial_merge_size=merge, temporal_patch_size=2, window_size=merge * patch_size,
                fullatt_block_indexes=[layers - 1])


# model_type -> (transformers' config, model and processor class names, the vision tower's config)
VERSIONS = {
    "qwen2_vl": ("Qwen2VLConfig", "Qwen2VLForConditionalGeneration", "Qwen2VLProcessor", _qwen2_vl_tower),
    "qwen2_5_vl": ("Qwen2_5_VLConfig", "Qwen2_5_VLForConditionalGeneration", "Qwen2_5_VLProcessor", _qwen2_5_vl_tower),
}


def build_tiny_qwen2_vl(out: str | Path, lm_dir: str | Path, hidden: int = 64, image_size: int = 32, patch_size: int = 8,
                        vision_layers: int = 2, seed: int = 0, version: str = "qwen2_vl") -> Path:
    """Write a Qwen2VLForConditionalGeneration folder (safetensors + processor) to `out`; returns it.

    `lm_dir` gives the tokenizer only. The decoder is `hidden` wide (4 heads), the vision tower
    hidden/2 wide; every image is resized to image_size² pixels, (image_size/patch_size/2)² tokens.
    `version` is a VERSIONS key (qwen2_vl, qwen2_5_vl).
    """

    import torch
    import transformers
    from transformers import AutoTokenizer
    # the PIL image processor: the top-level name asks for torchvision, which the engine does not need
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from engine.vision.processor import images_only

    out = Path(out)
    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(str(lm_dir))
    tok.add_tokens(VISION_TOKENS, special_tokens=True)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    merge = 2
    image_processor = Qwen2VLImageProcessorPil(
        min_pixels=image_size * image_size, max_pixels=image_size * image_size, patch_size=patch_size,
        temporal_patch_size=2, merge_size=merge, do_resize=True, do_rescale=True, do_normalize=True,
        image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])
    # Qwen2VLProcessor wants a video processor too; Qwen2-VL's needs torchvision, and edgetune trains images only
    config_cls, model_cls, processor_cls, tower = (getattr(transformers, n) if isinstance(n, str) else n
                                                   for n in VERSIONS[version])
    processor = images_only(processor_cls)(image_processor=image_processor, tokenizer=tok, chat_template=CHAT_TEMPLATE)
    heads = 4
    half_rotary = hidden // heads // 2  # M-RoPE splits each head's rotary pairs into temporal, height, width
    section = [half_rotary - 2 * (half_rotary * 3 // 8), half_rotary * 3 // 8, half_rotary * 3 // 8]
    text = dict(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
                num_attention_heads=heads, num_key_value_heads=2, max_position_embeddings=1024,
                rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "mrope_section": section},
                bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                tie_word_embeddings=True)
    vision = tower(hidden, patch_size, merge, vision_layers)
    ids = {name: tok.convert_tokens_to_ids(t) for name, t in
           (("vision_start_token_id", "<|vision_start|>"), ("image_token_id", "<|image_pad|>"),
            ("vision_end_token_id", "<|vision_end|>"), ("video_token_id", "<|video_pad|>"))}
    config = config_cls(text_config=text, vision_config=vision, tie_word_embeddings=True, **ids)
    model = model_cls(config)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    from engine.vision.tiny_save import save_tiny

    return save_tiny(model, processor, out)
