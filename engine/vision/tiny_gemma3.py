"""Build a tiny random Gemma 3 vision-language model (Gemma3ForConditionalGeneration): for tests.

    python -m engine.vision.tiny_vlm /tmp/tiny-gemma3 --family gemma3

Gemma 3's parts at toy size: a SigLIP vision tower, Gemma 3's projector (average pool of the
patch grid down to `mm_tokens_per_image` tokens, the soft-embedding RMSNorm, the input
projection) and a gemma3_text decoder, all random. No Gemma tokenizer can be downloaded on an
offline machine, so the tokenizer is the bundled SmolLM2's (byte-level BPE) with Gemma 3's
special tokens added: <start_of_image>, <image_soft_token>, <end_of_image> (named boi / image /
eoi, as Gemma 3's own tokenizer_config.json names them, so Gemma3Processor finds them) and the
turn markers <start_of_turn>, <end_of_turn>. The chat template is Gemma 3's shape (user / model
turns, a system prompt folded into the first user turn, `<start_of_image>` where an image goes).
The processor expands each <start_of_image> into "\\n\\n<start_of_image>" + mm_tokens_per_image
x <image_soft_token> + "<end_of_image>\\n\\n" and marks the soft tokens in token_type_ids (the
decoder attends bidirectionally inside an image).
"""

from __future__ import annotations

from pathlib import Path

from engine.errors import ConfigError

IMAGE_TOKENS = {"boi_token": "<start_of_image>", "image_token": "<image_soft_token>", "eoi_token": "<end_of_image>"}
TURN_TOKENS = ["<start_of_turn>", "<end_of_turn>"]

# Gemma 3's template, shortened: roles user/model, system text folded into the first user turn.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages[0]['role'] == 'system' -%}"
    "{%- if messages[0]['content'] is string -%}{%- set first_user_prefix = messages[0]['content'] + '\n\n' -%}"
    "{%- else -%}{%- set first_user_prefix = messages[0]['content'][0]['text'] + '\n\n' -%}{%- endif -%}"
    "{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}{%- set first_user_prefix = '' -%}{%- set loop_messages = messages -%}{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] -%}"
    "{{ '<start_of_turn>' + role + '\n' + (first_user_prefix if loop.first else '') }}"
    "{%- if message['content'] is string -%}{{ message['content'] | trim }}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}{{ '<start_of_image>' }}"
    "{%- elif part['type'] == 'text' -%}{{ part['text'] | trim }}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{ '<end_of_turn>\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)


def build_tiny_gemma3(out: str | Path, lm_dir: str | Path, hidden: int = 64, image_size: int = 32, patch_size: int = 8,
                      tokens_per_image: int = 4, vision_layers: int = 2, seed: int = 0, sliding_window: int = 256) -> Path:
    """Write a Gemma3ForConditionalGeneration folder (safetensors + processor) to `out`; returns it.

    `lm_dir` gives the tokenizer only. The decoder is `hidden` wide, the vision tower hidden/2. The
    tower sees `image_size`² pixels in `patch_size`² patches; the projector average-pools that grid
    to `tokens_per_image` (a square) image tokens. `sliding_window`: the decoder's local attention span.
    """
    import torch
    from transformers import AutoTokenizer, Gemma3Config, Gemma3ForConditionalGeneration, Gemma3Processor
    # the PIL image processor: the top-level name asks for torchvision, which the engine does not need
    from transformers.models.gemma3.image_processing_pil_gemma3 import Gemma3ImageProcessorPil

    side, per_side = image_size // patch_size, int(tokens_per_image ** 0.5)
    if per_side * per_side != tokens_per_image or side % per_side:
        raise ConfigError(f"A {image_size} px image in {patch_size} px patches is a {side}x{side} grid, which "
                          f"{tokens_per_image} image tokens (a {per_side}x{per_side} average pool) cannot divide evenly; "
                          f"use an image size of {patch_size * per_side} x a whole number.")
    out = Path(out)
    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(str(lm_dir), extra_special_tokens=dict(IMAGE_TOKENS))
    tok.add_tokens(TURN_TOKENS, special_tokens=True)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    image_processor = Gemma3ImageProcessorPil(size={"height": image_size, "width": image_size}, do_resize=True,
                                              do_rescale=True, do_normalize=True, image_mean=[0.5, 0.5, 0.5],
                                              image_std=[0.5, 0.5, 0.5], do_pan_and_scan=False)
    processor = Gemma3Processor(image_processor=image_processor, tokenizer=tok, image_seq_length=tokens_per_image,
                                chat_template=CHAT_TEMPLATE)
    end_of_turn = tok.convert_tokens_to_ids("<end_of_turn>")
    text = dict(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, head_dim=16, query_pre_attn_scalar=16,
                max_position_embeddings=1024, sliding_window=sliding_window, bos_token_id=tok.bos_token_id,
                eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    # the tower half as wide as the LM: a transposed projection could not pass for the right one
    vision = dict(hidden_size=hidden // 2, intermediate_size=hidden, num_hidden_layers=vision_layers, num_attention_heads=4,
                  image_size=image_size, patch_size=patch_size, vision_use_head=False, layer_norm_eps=1e-6)
    config = Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=tokens_per_image,
                          boi_token_index=tok.boi_token_id, eoi_token_index=tok.eoi_token_id,
                          image_token_index=tok.image_token_id, tie_word_embeddings=True)
    model = Gemma3ForConditionalGeneration(config)
    with torch.no_grad():
        # Gemma initialises its (1 + weight) norms and the input projection at zero; random values
        # make the exports' norm shift and projection layout visible in the checks.
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") and "vision_tower" not in name:
                p.normal_(0.0, 0.1)
        proj = model.model.multi_modal_projector.mm_input_projection_weight
        proj.normal_(0.0, (hidden // 2) ** -0.5)
    model.generation_config.eos_token_id = [tok.eos_token_id, end_of_turn]  # as Gemma 3 -it: <eos> or <end_of_turn>
    model.generation_config.pad_token_id = tok.pad_token_id
    from engine.vision.tiny_save import save_tiny

    return save_tiny(model, processor, out)
