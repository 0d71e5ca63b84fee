"""The exported pair on a prompt with an image: llama.cpp's next-token logits vs transformers'.

    check = image_prompt_check(merged_vlm_dir, Path("model-f16.gguf"), Path("mmproj-f16.gguf"), image)

Matching image embeddings (vision_export.verify_mmproj) do not show how the decoder reads them:
where the image tokens sit among the text tokens, the scale the decoder applies to text but not
to image embeddings, and whether image tokens attend to each other both ways (Gemma 3 does, in
training and in llama.cpp; a causal decoder there would answer differently). So the sample
question is rendered with the model's chat template, run through transformers (with the
processor's token_type_ids) and through llama.cpp's libmtmd (the image where the processor put
it, the text around it tokenised by llama.cpp), and the last position's logits are compared.
The two token sequences are compared first: when llama.cpp wraps the image differently from the
processor the logits are not comparable, and that is reported instead.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field
from pathlib import Path

QUESTION = "What colour is the shape?"
# A decoder that ignores or misplaces the image is far off; quantised decoders differ a little anyway,
# so smaller differences are reported (nmse_max_prompt in verify.json), not failed.
MAX_PROMPT_NMSE = 0.1


@dataclass
class PromptCheck:
    compared: bool = False
    tokens: int = 0
    nmse: float | None = None  # of the last position's logits, llama.cpp vs transformers
    same_top1: bool | None = None
    notes: list = field(default_factory=list)


def _hf_prompt(model_dir: Path, image):
    """(prompt text, token ids, last logits) of transformers' model on the sample question with `image`."""
    import torch
    from transformers import AutoModelForImageTextToText

    from engine.vision.processor import load_processor

    processor = load_processor(model_dir)
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": QUESTION}]}]
    text = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    enc = processor(text=[text], images=[[image]], add_special_tokens=False, return_tensors="pt")
    model = AutoModelForImageTextToText.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    with torch.no_grad():
        logits = model(**enc).logits[0, -1].float().numpy()
    ids = [-1 if t in processor.image_token_ids else t for t in enc["input_ids"][0].tolist()]
    return text, processor, ids, logits


def _llama_cpp_prompt(lm_gguf: Path, mmproj: Path, text: str, image, expected: list):
    """(token ids with -1 for image positions, last logits) of llama.cpp on `text` whose marker is the image;
    the logits are None when the ids are not `expected` (evaluating a layout libmtmd did not plan for can abort
    the process inside llama.cpp, as an Idefics3 image it tiles differently from the processor does)."""
    import llama_cpp
    import numpy as np
    from llama_cpp import mtmd_cpp as mtmd

    llm = llama_cpp.Llama(model_path=str(lm_gguf), n_ctx=1024, verbose=False)
    params = mtmd.mtmd_context_params_default()
    params.use_gpu, params.n_threads, params.print_timings, params.warmup = False, 2, False, False
    ctx = mtmd.mtmd_init_from_file(str(mmproj).encode(), llm._model.model, params)
    if not ctx:
        llm.close()
        raise RuntimeError(f"llama.cpp could not load {mmproj.name} with {lm_gguf.name}")
    try:
        rgb = image.convert("RGB")
        data = (ctypes.c_uint8 * (rgb.width * rgb.height * 3)).from_buffer_copy(rgb.tobytes())
        bitmaps = (mtmd.mtmd_bitmap_p_ctypes * 1)(mtmd.mtmd_bitmap_init(rgb.width, rgb.height, data))
        raw = text.encode()
        inp = mtmd.mtmd_input_text(raw, len(raw), False, True)
        chunks = mtmd.mtmd_input_chunks_init()
        if mtmd.mtmd_tokenize(ctx, chunks, ctypes.byref(inp), bitmaps, 1) != 0:
            raise RuntimeError("llama.cpp could not tokenise the prompt with its image")
        ids = []
        for i in range(mtmd.mtmd_input_chunks_size(chunks)):
            chunk = mtmd.mtmd_input_chunks_get(chunks, i)
            if mtmd.mtmd_input_chunk_get_type(chunk) == mtmd.MTMD_INPUT_CHUNK_TYPE_TEXT:
                n = ctypes.c_size_t()
                toks = mtmd.mtmd_input_chunk_get_tokens_text(chunk, ctypes.byref(n))
                ids += [toks[j] for j in range(n.value)]
            else:
                ids += [-1] * mtmd.mtmd_input_chunk_get_n_tokens(chunk)
        if ids != expected:
            return ids, None
        n_past = llama_cpp.llama_pos(0)
        if mtmd.mtmd_helper_eval_chunks(ctx, llm._ctx.ctx, chunks, 0, 0, 512, True, ctypes.byref(n_past)) != 0:
            raise RuntimeError("llama.cpp failed to evaluate the prompt with its image")
        n_vocab = llama_cpp.llama_n_vocab(llama_cpp.llama_model_get_vocab(llm._model.model))
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm._ctx.ctx, -1), shape=(n_vocab,)).copy()
        return ids, logits
    finally:
        mtmd.mtmd_free(ctx)
        llm.close()


def image_prompt_check(model_dir: Path, lm_gguf: Path, mmproj: Path, image, image_text: str = "{marker}") -> PromptCheck:
    """Compare the two runtimes on the sample question with `image`; `image_text` is what the processor writes
    around an image besides the tokens llama.cpp adds itself (Gemma 3: "\\n\\n{marker}\\n\\n")."""
    import numpy as np
    from llama_cpp import mtmd_cpp as mtmd

    check = PromptCheck()
    text, processor, hf_ids, hf_logits = _hf_prompt(model_dir, image)
    marker = mtmd.mtmd_default_marker().decode()
    cpp_text = text.replace(processor.image_token, image_text.format(marker=marker))
    cpp_ids, cpp_logits = _llama_cpp_prompt(lm_gguf, mmproj, cpp_text, image, hf_ids)
    check.tokens = len(hf_ids)
    if cpp_logits is None:
        check.notes.append(f"llama.cpp lays the prompt out as {len(cpp_ids)} tokens, transformers as {len(hf_ids)} "
                           f"(first difference at {next((i for i, (a, b) in enumerate(zip(cpp_ids, hf_ids)) if a != b), min(len(cpp_ids), len(hf_ids)))}); "
                           f"image-prompt logits not compared")
        return check
    n = min(len(cpp_logits), len(hf_logits))  # a padded HF vocabulary has rows past the tokenizer's
    ours, ref = cpp_logits[:n].astype(np.float64), hf_logits[:n].astype(np.float64)
    check.compared = True
    check.nmse = float(((ours - ref) ** 2).sum() / max((ref ** 2).sum(), 1e-30))
    check.same_top1 = bool(ours.argmax() == ref.argmax())
    return check


def add_image_prompt_check(report, model_dir: Path, lm_gguf: Path, mmproj: Path, image) -> None:
    """Run image_prompt_check for the mmproj's VerifyReport: its NMSE as nmse_max_prompt, top-1 agreement as top1."""
    from exporters.gguf.mmproj import projector_layout

    projector = projector_layout(model_dir)
    try:
        check = image_prompt_check(model_dir, lm_gguf, mmproj, image, projector.image_text)
    except (RuntimeError, OSError, ValueError) as e:
        report.warnings.append(f"image prompt not compared: {e}")
        return
    report.warnings.extend(check.notes)
    if not check.compared:
        return
    report.nmse_max_prompt, report.top1 = check.nmse, float(check.same_top1)
    if check.nmse > MAX_PROMPT_NMSE:
        report.problems.append(f"on a prompt with an image llama.cpp's next-token logits differ from transformers': "
                               f"NMSE {check.nmse:.2e} > {MAX_PROMPT_NMSE:g} (the decoder reads the image differently)")
