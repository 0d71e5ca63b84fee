"""Check a vision-language ONNX export against the HF model, through onnxruntime-genai's own pipeline.

Everything runs as a user's chat would: onnxruntime-genai's multimodal processor turns the
prompt and the image file into ids and pixels, the vision, embedding and decoder graphs run,
and the results are compared with transformers' on the same prompt and picture:

1. Tokenizer and end of turn: the text checks of verify.py (text-only prompts go through the
   same pipeline, with no image).
2. Pixels and prompt ids: onnxruntime-extensions' preprocessing against the HF processor's
   (max abs difference of the normalised pixels), and the image prompt's ids, which must be
   identical (the runtime expands the image placeholder itself).
3. Image features: vision.onnx on the HF processor's pixels against the HF tower + projector
   (NMSE; fp32 weights within 1e-4, the int8 weights of int4/int8 exports within 1e-2).
4. Logits over every prompt position, for image prompts and text prompts, against transformers
   computing what the runtime computes: NMSE, top-1 and KL judged by the precision's bounds
   (verify.BOUNDS). Where transformers attends differently inside an image (Gemma 3's
   bidirectional image attention, `token_type_ids`), the runtime's causal-only graph is also
   compared with transformers' own forward at the positions after the image and the difference
   reported ("as_trained"): that is what a user of the runtime gets, but it is a property of the
   runtime, not of the export.
5. Greedy replies to the image prompts, onnxruntime-genai against transformers' generate.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from exporters.onnx.verify import (BOUNDS, MAX_NEW_TOKENS, check_end_of_turn, check_tokenizer, judge, logit_stats,
                                   near_tie, pool_logit_stats)

IMAGE_QUESTIONS = ["What colour is the shape?", "Describe this picture in one sentence."]
TEXT_PROMPTS = ["Write one sentence about the sea.", "What is the capital of France?"]
MAX_PIXEL_DIFF = 0.05  # normalised units ([-1, 1] for mean/std 0.5): resampling kernels may differ by a rounding
MAX_VISION_NMSE = {"fp32": 1e-4, "int8": 1e-2}  # by the vision graph's weights (int8 for the int4/int8 exports)


def sample_images(folder: Path) -> list[Path]:
    """Two small pictures (a landscape and a square one) written into `folder`."""
    from PIL import Image, ImageDraw

    folder.mkdir(parents=True, exist_ok=True)
    pictures = [((96, 64), "white", [(20, 12, 60, 52)], "red", "ellipse"), ((48, 48), (30, 30, 60), [(8, 8, 40, 40)], "yellow", "rectangle")]
    paths = []
    for i, (size, background, boxes, colour, shape) in enumerate(pictures):
        img = Image.new("RGB", size, background)
        draw = ImageDraw.Draw(img)
        for box in boxes:
            getattr(draw, shape)(box, fill=colour)
        paths.append(folder / f"sample-{i}.png")
        img.save(paths[-1])
    return paths


def image_checks_text(summary: dict) -> str:
    """One line of a VLM verification's image checks (the exporter prints it, the app's table shows it)."""
    text = (f"images: pixels within {summary['max_pixel_diff']:.1e} of the HF processor's, image features NMSE "
            f"{summary['vision_nmse']:.1e}")
    if summary.get("as_trained_top1") is not None:
        text += (f"; after the image vs transformers' bidirectional image attention: top-1 "
                 f"{summary['as_trained_top1']:.1%}, KL {summary['as_trained_kl']:.4f}")
    return text


def _fresh(hf_model):
    """The model with no positions left over from the last prompt (Qwen-VL caches its M-RoPE offsets)."""
    if hasattr(getattr(hf_model, "model", None), "rope_deltas"):
        hf_model.model.rope_deltas = None
    return hf_model


class _Runtime:
    """onnxruntime-genai's pipeline on one prompt: ids, pixels, prompt logits, greedy reply."""

    def __init__(self, chat_model):
        self.chat = chat_model
        self.processor = chat_model.model.create_multimodal_processor()

    def inputs(self, prompt: str, image: Path | None):
        import onnxruntime_genai as og

        return self.processor(prompt, images=og.Images.open(str(image)) if image else None)

    def run(self, prompt: str, image: Path | None, new_tokens: int):
        import numpy as np
        import onnxruntime_genai as og

        inputs = self.inputs(prompt, image)
        ids = inputs["input_ids"].as_numpy().reshape(-1).astype(np.int64)
        params = og.GeneratorParams(self.chat.model)
        params.set_search_options(max_length=max(len(ids) + new_tokens, self.chat.min_capacity), do_sample=False)
        gen = og.Generator(self.chat.model, params)
        gen.set_inputs(inputs)
        gen.generate_next_token()
        logits = gen.get_output("logits").reshape(-1, gen.get_output("logits").shape[-1])
        reply, stopped = [], False
        while len(reply) < new_tokens:
            token = int(gen.get_next_tokens()[0])
            if token in self.chat.eos_ids:
                stopped = True
                break
            reply.append(token)
            if gen.is_done():
                break
            gen.generate_next_token()
        pixels = inputs["pixel_values"].as_numpy() if image else None
        return ids, pixels, logits, reply, stopped


def verify_vlm_export(folder: str | Path, hf_dir: str | Path, precision: str, vision_weights: str = "fp32") -> dict:
    """Run every check on the VLM export in `folder` against the HF model in `hf_dir`; returns the report.

    `vision_weights` ("fp32" or "int8") sets the image-features bound."""
    import numpy as np
    import onnxruntime as ort
    import torch
    from transformers import AutoModelForImageTextToText
    from transformers.utils import logging as hf_logging

    from engine.runtimes.onnx_genai import OnnxChatModel
    from engine.vision.data import open_image
    from engine.vision.processor import load_processor

    hf_logging.disable_progress_bar()
    folder = Path(folder)
    genai = json.loads((folder / "genai_config.json").read_text(encoding="utf-8"))
    processor = load_processor(hf_dir)
    hf_tok = processor.tokenizer
    hf_model = AutoModelForImageTextToText.from_pretrained(str(hf_dir), dtype=torch.float32).eval()
    chat_model = OnnxChatModel(folder, provider="cpu")
    runtime = _Runtime(chat_model)
    tokenizer = check_tokenizer(chat_model, hf_tok)
    eot = check_end_of_turn(chat_model, hf_model, hf_tok)
    vision = ort.InferenceSession(str(folder / genai["model"]["vision"]["filename"]), providers=["CPUExecutionProvider"])

    images, graph_rows, trained_rows, text_rows, replies = [], [], [], [], []
    scratch = tempfile.TemporaryDirectory(prefix="edgetune-verify-images-")
    for image_path, question in zip(sample_images(Path(scratch.name)), IMAGE_QUESTIONS):
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
        prompt = processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        ref_in = processor(text=[prompt], images=[[open_image(image_path)]], add_special_tokens=False, return_tensors="pt")
        ids, pixels, logits, reply, stopped = runtime.run(prompt, image_path, MAX_NEW_TOKENS)
        same_ids = ids.tolist() == ref_in["input_ids"][0].tolist()
        image_token = int(hf_model.config.image_token_id)
        after_image = slice(max((i for i, t in enumerate(ids.tolist()) if t == image_token), default=-1) + 1, None)
        pixel_diff = float(np.abs(pixels.reshape(ref_in["pixel_values"].shape) - ref_in["pixel_values"].numpy()).max())
        vision_in = {i.name: ref_in[i.name] for i in vision.get_inputs()}  # pixel_values (+ image_grid_thw)
        with torch.no_grad():
            ref_features = hf_model.model.get_image_features(**vision_in)
            ref_features = getattr(ref_features, "pooler_output", ref_features)
            if isinstance(ref_features, (list, tuple)):  # one tensor per image (Qwen)
                ref_features = torch.cat(list(ref_features))
            ref_features = ref_features.reshape(-1, hf_model.config.text_config.hidden_size)
            features = vision.run(None, {k: v.numpy() for k, v in vision_in.items()})[0]
            as_trained = _fresh(hf_model)(**ref_in).logits[0].numpy()
            # what the runtime computes: every position attends causally (no token_type_ids)
            causal = _fresh(hf_model)(**{k: v for k, v in ref_in.items() if k != "token_type_ids"}).logits[0].numpy()
            out = _fresh(hf_model).generate(**ref_in, max_new_tokens=MAX_NEW_TOKENS, do_sample=False,
                                            eos_token_id=sorted(chat_model.eos_ids), pad_token_id=hf_tok.pad_token_id)
        ref_reply = [int(t) for t in out[0, ref_in["input_ids"].shape[1]:]]
        hf_stopped = any(t in chat_model.eos_ids for t in ref_reply)
        ref_reply = ref_reply[:next((i for i, t in enumerate(ref_reply) if t in chat_model.eos_ids), len(ref_reply))]
        vision_nmse = float(((features - ref_features.numpy()) ** 2).sum() / (ref_features.numpy() ** 2).sum())
        images.append({"image": image_path.name, "question": question, "prompt_tokens": len(ids), "same_ids": same_ids,
                       "max_pixel_diff": pixel_diff, "vision_nmse": vision_nmse})
        if same_ids:
            graph_rows.append(logit_stats(logits, causal))
            if "token_type_ids" in ref_in:  # transformers attends both ways inside an image; the runtime cannot
                trained_rows.append(logit_stats(logits[after_image], as_trained[after_image]))
        k = next((i for i, (a, b) in enumerate(zip(reply, ref_reply)) if a != b), min(len(reply), len(ref_reply)))
        run = {"prompt": question, "image": image_path.name, "hf_tokens": len(ref_reply), "hf_stopped": hf_stopped,
               "onnx_tokens": len(reply), "onnx_stopped": stopped, "same_tokens": reply == ref_reply, "common_prefix": k,
               "onnx_text": hf_tok.decode(reply, skip_special_tokens=True),
               "hf_text": hf_tok.decode(ref_reply, skip_special_tokens=True)}
        if k < min(len(reply), len(ref_reply)):
            with torch.no_grad():
                full = {**ref_in, "input_ids": torch.cat([ref_in["input_ids"], torch.tensor([ref_reply[:k]], dtype=torch.long)], 1)}
                full["attention_mask"] = torch.ones_like(full["input_ids"])
                for name in ("token_type_ids", "mm_token_type_ids"):  # the reply's tokens are text
                    if name in full:
                        full[name] = torch.cat([ref_in[name], torch.zeros(1, k, dtype=ref_in[name].dtype)], 1)
                logp = _fresh(hf_model)(**full).logits[0, -1].double().log_softmax(-1)
            run["divergence"] = {"position": k, "hf_token": hf_tok.decode([ref_reply[k]]), "onnx_token": hf_tok.decode([reply[k]]),
                                 "hf_logprob_gap": round(float(logp[ref_reply[k]] - logp[reply[k]]), 4)}
        replies.append(run)

    scratch.cleanup()
    for question in TEXT_PROMPTS:
        prompt = processor.apply_chat_template([{"role": "user", "content": [{"type": "text", "text": question}]}],
                                               tokenize=False, add_generation_prompt=True)
        ids, _, logits, _, _ = runtime.run(prompt, None, 1)
        with torch.no_grad():
            ref = _fresh(hf_model)(input_ids=torch.from_numpy(ids)[None]).logits[0].numpy()
        text_rows.append(logit_stats(logits, ref))

    logit_report = pool_logit_stats(graph_rows + text_rows) if graph_rows else {"nmse": float("inf"), "top1": 0.0, "kl": float("inf")}
    failures = judge(precision, tokenizer, logit_report, eot)
    bounds = BOUNDS[precision]
    for im in images:
        if not im["same_ids"]:
            failures.append(f"onnxruntime-genai's image prompt ids for {im['image']} differ from the HF processor's")
        if im["max_pixel_diff"] > MAX_PIXEL_DIFF:
            failures.append(f"image preprocessing of {im['image']} differs from the HF processor's by up to "
                            f"{im['max_pixel_diff']:.3f} (> {MAX_PIXEL_DIFF}): check processor_config.json")
        if im["vision_nmse"] > MAX_VISION_NMSE[vision_weights]:
            failures.append(f"vision.onnx ({vision_weights} weights) features of {im['image']}: NMSE "
                            f"{im['vision_nmse']:.2e} > {MAX_VISION_NMSE[vision_weights]:.0e}")
    for run in replies:
        if run["hf_stopped"] and not run["onnx_stopped"] and not near_tie(run, bounds):
            failures.append(f"greedy reply to '{run['prompt']}' with {run['image']} did not stop at the end-of-turn "
                            f"token within {MAX_NEW_TOKENS} tokens (the HF model stops after {run['hf_tokens']})")
    as_trained = pool_logit_stats(trained_rows) if trained_rows else None
    free_stops = sum(r["onnx_stopped"] for r in eot["runs"] + replies if r["hf_stopped"])
    return {"passed": not failures, "failures": failures, "precision": precision, "provider": "cpu",
            "bounds": {"max_pixel_diff": MAX_PIXEL_DIFF, "max_vision_nmse": MAX_VISION_NMSE[vision_weights], **vars(bounds)},
            "tokenizer": tokenizer, "images": images, "logits": logit_report, "image_logits_as_trained": as_trained,
            "end_of_turn": eot, "image_replies": replies,
            "summary": {"nmse": logit_report["nmse"], "top1": logit_report["top1"], "kl": logit_report["kl"],
                        "tokenizer_ok": tokenizer["ok"],
                        "max_pixel_diff": max(im["max_pixel_diff"] for im in images),
                        "vision_nmse": max(im["vision_nmse"] for im in images),
                        "as_trained_top1": as_trained and as_trained["top1"], "as_trained_kl": as_trained and as_trained["kl"],
                        "free_run_stops": f"{free_stops}/{sum(r['hf_stopped'] for r in eot['runs'] + replies)}",
                        "same_greedy_text": f"{sum(r['same_tokens'] for r in eot['runs'] + replies)}/{len(eot['runs']) + len(replies)}"}}
