"""Build a small LLaVA model (CLIP vision tower + 2-layer MLP projector + a Llama LM): tests and the demo.

    python -m engine.vision.tiny_vlm runs/tiny-llava --family llava --lm smollm2-135m-instruct
    python -m engine.vision.tiny_vlm /tmp/llava --family llava --random-lm --hidden 64

The LLaVA-1.5 layout as transformers writes it (LlavaForConditionalGeneration: model.vision_tower
a CLIPVisionModel, model.multi_modal_projector linear_1 -> gelu -> linear_2, model.language_model
+ lm_head), with the settings of llava-hf/llava-1.5: image features from the second-to-last CLIP
layer (`vision_feature_layer=-2`), CLS token dropped (`vision_feature_select_strategy=default`),
so an image costs (image_size/patch_size)² tokens. The vision tower and projector are random;
the LM is the given one's real weights (the demo) or a tiny random Llama of its vocabulary.
The processor is LlavaProcessor + CLIP's image processor (resize the short side, centre-crop,
CLIP mean/std), the LM's tokenizer with `<image>` added, and tiny_vlm's ChatML image template.
"""

from __future__ import annotations

from pathlib import Path

from engine.vision.tiny_vlm import CHAT_TEMPLATE

# OpenAI CLIP's normalisation (what llava-1.5's CLIPImageProcessor uses)
CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def build_tiny_llava(out: str | Path, lm_dir: str | Path, random_lm: bool = False, hidden: int = 64,
                     image_size: int = 32, patch_size: int = 8, vision_layers: int = 2, seed: int = 0) -> Path:
    """Write a LlavaForConditionalGeneration folder (safetensors + processor) to `out`; returns it.

    Each image becomes (image_size/patch_size)² image tokens (16 at the defaults)."""
    import torch
    from transformers import (AutoModelForCausalLM, AutoTokenizer, CLIPVisionConfig, LlamaConfig, LlavaConfig,
                              LlavaForConditionalGeneration, LlavaProcessor)
    # the PIL image processor: the top-level name asks for torchvision, which the engine does not need
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    out = Path(out)
    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(str(lm_dir))
    tok.add_special_tokens({"extra_special_tokens": ["<image>"]})
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}, do_resize=True,
        do_center_crop=True, do_rescale=True, do_normalize=True, image_mean=CLIP_MEAN, image_std=CLIP_STD)
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tok, patch_size=patch_size,
                               vision_feature_select_strategy="default", num_additional_image_tokens=1,
                               image_token="<image>", chat_template=CHAT_TEMPLATE)
    if random_lm:
        text_config = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
                                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                                  bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                                  tie_word_embeddings=True)
        lm = None
    else:
        lm = AutoModelForCausalLM.from_pretrained(str(lm_dir), dtype=torch.float32)
        lm.resize_token_embeddings(len(tok))
        text_config = lm.config
    vision = CLIPVisionConfig(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=vision_layers,
                              num_attention_heads=4, image_size=image_size, patch_size=patch_size, projection_dim=hidden)
    config = LlavaConfig(vision_config=vision.to_dict(), text_config=text_config.to_dict(),
                         image_token_index=processor.image_token_id, image_seq_length=(image_size // patch_size) ** 2,
                         vision_feature_layer=-2, vision_feature_select_strategy="default", projector_hidden_act="gelu",
                         pad_token_id=tok.pad_token_id, tie_word_embeddings=text_config.tie_word_embeddings)
    model = LlavaForConditionalGeneration(config)
    if lm is not None:
        model.model.language_model.load_state_dict(lm.model.state_dict())
        model.lm_head.weight.data.copy_(lm.lm_head.weight.data)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    from engine.vision.tiny_save import save_tiny

    return save_tiny(model, processor, out)
