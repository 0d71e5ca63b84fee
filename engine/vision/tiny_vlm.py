"""Build a small Idefics3 (SmolVLM-family) model from a text LM: for tests and the learnable demo
(or, with --family llava, a LLaVA-1.5-style one: engine/vision/tiny_llava.py; with --family gemma3,
a tiny random Gemma 3: engine/vision/tiny_gemma3.py; with --family qwen2_vl or qwen2_5_vl, a tiny random
Qwen2-VL or Qwen2.5-VL: engine/vision/tiny_qwen2_vl.py).

    python -m engine.vision.tiny_vlm runs/tiny-vlm --lm smollm2-135m-instruct      # SmolLM2 reads the images
    python -m engine.vision.tiny_vlm /tmp/vlm --lm smollm2-135m-instruct --random-lm --hidden 64
    python -m engine.vision.tiny_vlm /tmp/tiny-gemma3 --family gemma3                 # Gemma 3, all random (tiny_gemma3.py)
    python -m engine.vision.tiny_vlm /tmp/gemma3-256 --family gemma3 --image-size 64 --patch-size 4 --image-tokens 256
    python -m engine.vision.tiny_vlm runs/tiny-llava --family llava --lm smollm2-135m-instruct   # LLaVA (tiny_llava.py)
    python -m engine.vision.tiny_vlm /tmp/tiny-qwen2-vl --family qwen2_vl             # Qwen2-VL, all random (tiny_qwen2_vl.py)
    python -m engine.vision.tiny_vlm /tmp/tiny-qwen2.5-vl --family qwen2_5_vl         # Qwen2.5-VL, likewise

No VLM weights can be downloaded on an offline machine, so this assembles one from what is at
hand: a small SigLIP-style vision tower (random), the Idefics3 pixel-shuffle connector (random)
and a text model, either the given LM's real weights (the demo: LoRA teaches the LM to read
the frozen random image features) or a tiny random Llama of the same vocabulary (unit tests).
The processor (image processor + the LM's tokenizer with the image tokens added + a ChatML
template that knows image parts) is saved beside it, so the folder loads like a real SmolVLM
through AutoModelForImageTextToText / AutoProcessor.
"""

from __future__ import annotations

import argparse
from pathlib import Path

# ChatML (SmolLM2's format) with image parts: "<image>" where an image goes, text parts as they are.
CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for part in message['content'] %}{% if part['type'] == 'image' %}<image>"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tiny_vlm(out: str | Path, lm_dir: str | Path, random_lm: bool = False, hidden: int = 64,
                   image_size: int = 32, patch_size: int = 8, vision_layers: int = 2, seed: int = 0) -> Path:
    """Write an Idefics3ForConditionalGeneration folder (safetensors + processor) to `out`; returns it.

    `lm_dir` gives the tokenizer (and, unless `random_lm`, the text model's weights and shape).
    The vision tower sees `image_size`² pixels in `patch_size`² patches; the connector's pixel
    shuffle (scale 2) turns them into (image_size/patch_size/2)² image tokens per image.
    """
    import torch
    from transformers import (AutoConfig, AutoModelForCausalLM, AutoTokenizer, Idefics3Config,
                              Idefics3ForConditionalGeneration, Idefics3Processor)
    # the PIL image processor: the top-level name asks for torchvision, which the engine does not need
    from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

    out = Path(out)
    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(str(lm_dir))
    image_processor = Idefics3ImageProcessorPil(
        do_image_splitting=False, size={"longest_edge": image_size}, max_image_size={"longest_edge": image_size},
        do_resize=True, do_rescale=True, do_normalize=True, image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])
    scale = 2
    seq_len = (image_size // patch_size) ** 2 // scale**2
    processor = Idefics3Processor(image_processor=image_processor, tokenizer=tok, image_seq_len=seq_len,
                                  chat_template=CHAT_TEMPLATE)
    tok = processor.tokenizer  # now holds <image>, <fake_token_around_image>, <end_of_utterance>
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if random_lm:
        from transformers import LlamaConfig

        text_config = LlamaConfig(vocab_size=len(tok), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
                                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                                  bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                                  tie_word_embeddings=True)
        lm = None
    else:
        text_config = AutoConfig.from_pretrained(str(lm_dir))
        lm = AutoModelForCausalLM.from_pretrained(str(lm_dir), dtype=torch.float32)
        lm.resize_token_embeddings(len(tok))
        text_config = lm.config
    vision = dict(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=vision_layers, num_attention_heads=4,
                  image_size=image_size, patch_size=patch_size)
    config = Idefics3Config(vision_config=vision, text_config=text_config.to_dict(), scale_factor=scale,
                            image_token_id=processor.image_token_id, pad_token_id=tok.pad_token_id,
                            tie_word_embeddings=text_config.tie_word_embeddings)
    model = Idefics3ForConditionalGeneration(config)
    if lm is not None:
        model.model.text_model.load_state_dict(lm.model.state_dict())
        model.lm_head.weight.data.copy_(lm.lm_head.weight.data)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    from engine.vision.tiny_save import save_tiny

    return save_tiny(model, processor, out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", help="Folder to write the model to.")
    p.add_argument("--lm", default="smollm2-135m-instruct", help="Text model (bundled name, folder or hub id).")
    p.add_argument("--random-lm", action="store_true", help="A tiny random Llama instead of the LM's weights.")
    p.add_argument("--hidden", type=int, default=64, help="Vision tower width (and the random LM's; gemma3, qwen2_vl, "
                                                          "qwen2_5_vl: the LM's, its tower is half as wide).")
    p.add_argument("--image-size", type=int, default=32, help="Pixels per side the vision tower sees.")
    p.add_argument("--image-tokens", type=int, default=4,
                   help="gemma3 only: soft tokens per image (a square; 256 as in a real Gemma 3, which ONNX Runtime "
                        "GenAI's Gemma 3 pipeline needs: use it with --image-size 64 --patch-size 4).")
    p.add_argument("--patch-size", type=int, default=8, help="gemma3 only: pixels per side of a vision patch.")
    p.add_argument("--family", choices=sorted(TINY_BUILDERS), default="idefics3",
                   help="VLM family: idefics3 (SmolVLM-style, from --lm), llava (CLIP tower + MLP projector, from --lm), "
                        "gemma3, qwen2_vl or qwen2_5_vl (all random; --lm gives the tokenizer).")
    args = p.parse_args(argv)
    from engine.models import resolve_model

    print(TINY_BUILDERS[args.family](args.out, resolve_model(args.lm).path, args))
    return 0


def _build_idefics3(out, lm_dir, args):
    return build_tiny_vlm(out, lm_dir, random_lm=args.random_lm, hidden=args.hidden, image_size=args.image_size)


def _build_llava(out, lm_dir, args):
    from engine.vision.tiny_llava import build_tiny_llava

    return build_tiny_llava(out, lm_dir, random_lm=args.random_lm, hidden=args.hidden, image_size=args.image_size)


def _build_gemma3(out, lm_dir, args):
    from engine.vision.tiny_gemma3 import build_tiny_gemma3

    # a sliding window that covers 256 image tokens and the question, as a real Gemma 3's 1024 does
    return build_tiny_gemma3(out, lm_dir, hidden=args.hidden, image_size=args.image_size, patch_size=args.patch_size,
                             tokens_per_image=args.image_tokens, sliding_window=max(256, 2 * args.image_tokens))


def _build_qwen2_vl(out, lm_dir, args):
    from engine.vision.tiny_qwen2_vl import build_tiny_qwen2_vl

    return build_tiny_qwen2_vl(out, lm_dir, hidden=args.hidden, image_size=args.image_size)


def _build_qwen2_5_vl(out, lm_dir, args):
    from engine.vision.tiny_qwen2_vl import build_tiny_qwen2_vl

    return build_tiny_qwen2_vl(out, lm_dir, hidden=args.hidden, image_size=args.image_size, version="qwen2_5_vl")


# --family: each family's tiny builder, (out, LM folder, parsed args) -> the model folder
TINY_BUILDERS = {"idefics3": _build_idefics3, "llava": _build_llava, "gemma3": _build_gemma3, "qwen2_vl": _build_qwen2_vl,
                 "qwen2_5_vl": _build_qwen2_5_vl}


if __name__ == "__main__":
    raise SystemExit(main())
