"""Check that an ONNX export still behaves like the Hugging Face model it came from.

Three checks, all run on the CPU execution provider (CUDA/DirectML graphs included: the
CPU provider implements the same contrib ops), results saved as verify.json:

1. Tokenizer: onnxruntime-genai's tokenizer gives the same ids as transformers' on varied
   texts (unicode, code, special tokens), decodes them to the same text, and renders the
   same chat prompt from the same messages.
2. Logits: the exported graph (run with plain onnxruntime, empty KV cache) against the HF
   model in fp32 on sample prompts: NMSE = sum((onnx-hf)^2)/sum(hf^2), top-1 agreement over
   all positions, mean KL(hf || onnx) per token in nats.
3. End of turn: genai_config's eos ids hold the tokenizer's end-of-turn token; with the
   reference answer forced in, the export predicts that token next and onnxruntime-genai
   stops; and free-running greedy chat generation stops at it wherever the HF model does.

Bounds per precision (BOUNDS): fp32 must match (NMSE <= 1e-4, top-1 >= 99%, the issue's
numbers); fp16 and int8 are bounded by KL; int4 only by a loose KL bound that catches a
broken graph (a garbage model scores KL > 5 nats) because 4-bit round-to-nearest costs
small models a lot (SmolLM2-135M: about 0.4-1 nat/token).

A free-running greedy reply is compared with HF's token by token. Where they part, the HF
model is asked how much worse it rates the export's token than its own (log-prob gap, in
nats). A near tie (gap within the precision's `tie_nats`) is a flip any rounding can cause;
after it the two replies are different texts, whose closeness KL and top-1 already measure,
so a reply that then runs past the token budget is reported, not failed. A reply that does
not stop after following HF exactly, or after choosing a token HF clearly ruled out, fails.
(SmolLM2-135M on "What is the capital of France?" is such a tie: "The" vs "L'", 0.08 nats,
flipped by int8 rounding and even by llama.cpp's AVX-512 kernels on the Q4_1 GGUF.)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

TOKENIZER_TEXTS = [
    "Hello world! The Quillon Q7 lantern lasts 40 hours.",
    "  leading spaces,\ttabs\nand\n\nnewlines  ",
    "Unicode: café, naïve, 12 µm, ünïcode ✓, 你好, こんにちは, emoji 🙂🚀",
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",
    "Numbers 3.14159 1,000,000 2024-11-23 0xFF",
]
CHAT_PROMPTS = [
    "What is the capital of France?",
    "Write one sentence about the sea.",
    "Who makes the Quillon Q7 lantern?",
]
PLAIN_PROMPTS = ["The capital of France is", "def add(a, b):\n    return"]
MAX_NEW_TOKENS = 48


@dataclass(frozen=True)
class Bounds:
    """Pass/fail limits for one precision; None = reported only."""

    max_nmse: Optional[float] = None
    min_top1: Optional[float] = None
    max_kl: Optional[float] = None
    tie_nats: float = 0.1  # a greedy divergence this close in HF's own log-probs is a near tie (see above)


BOUNDS: dict[str, Bounds] = {
    "fp32": Bounds(max_nmse=1e-4, min_top1=0.99, tie_nats=0.05),
    "fp16": Bounds(max_kl=0.01, tie_nats=0.25),
    "int8": Bounds(max_kl=0.05, tie_nats=0.25),
    "int4": Bounds(max_kl=2.0, tie_nats=1.0),
}


def _chat_text(hf_tok, question: str) -> str:
    return hf_tok.apply_chat_template([{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True)


def check_tokenizer(chat_model, hf_tok) -> dict:
    """Ids, decoded text and chat prompt from onnxruntime-genai vs transformers."""
    texts = TOKENIZER_TEXTS + [_chat_text(hf_tok, q) for q in CHAT_PROMPTS[:1]]
    mismatches = []
    for text in texts:
        ours = chat_model.encode(text)
        # What the runtime does (render, then encode) must give what HF's apply_chat_template(tokenize=True)
        # gives: the rendered text already holds any BOS, so nothing is added on either side.
        ref = hf_tok(text, add_special_tokens=False)["input_ids"]
        if ours != ref:
            first = next((i for i, (a, b) in enumerate(zip(ours, ref)) if a != b), min(len(ours), len(ref)))
            mismatches.append({"text": text, "kind": "encode", "first_diff": first,
                               "onnx": ours[first:first + 5], "hf": ref[first:first + 5]})
            continue
        decoded = chat_model.tokenizer.decode(ref)
        if decoded != hf_tok.decode(ref, skip_special_tokens=True):
            mismatches.append({"text": text, "kind": "decode", "onnx": decoded})
    messages = [{"role": "system", "content": "You are brief."}, {"role": "user", "content": "Hi!"},
                {"role": "assistant", "content": "Hello."}, {"role": "user", "content": CHAT_PROMPTS[0]}]
    try:
        ref = hf_tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    except Exception:  # templates that refuse a system turn (Gemma's raise_exception): check without one
        messages = messages[1:]
        ref = hf_tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ours = chat_model.render(messages)
    template_equal = ours == ref
    if not template_equal:
        mismatches.append({"text": "chat template", "kind": "render", "onnx": ours, "hf": ref})
    return {"texts": len(texts), "mismatches": mismatches, "chat_template_equal": template_equal,
            "ok": not mismatches}


def _feed(session, ids, genai_decoder: dict) -> dict:
    """Inputs for one no-cache forward pass, built from the graph's own input list."""
    import numpy as np

    from engine.runtimes.onnx_genai import sliding_window_size

    n = ids.shape[1]
    feed = {}
    for inp in session.get_inputs():
        name = inp.name
        if name == "input_ids":
            feed[name] = ids
        elif name == "attention_mask":
            feed[name] = np.ones((1, n), dtype=np.int64)
        elif name == "position_ids":
            feed[name] = np.arange(n, dtype=np.int64)[None, :]
        elif name.startswith("past_key_values."):
            dtype = np.float16 if "float16" in inp.type else np.float32
            # An empty cache, except that sliding-window layers (Gemma 2/3) insist on a buffer of at least
            # their window: zeros there, which the attention mask of this prompt never reaches.
            sliding = "sliding" in str(inp.shape[2])
            capacity = sliding_window_size(genai_decoder) if sliding else 0
            feed[name] = np.zeros((1, genai_decoder["num_key_value_heads"], capacity, genai_decoder["head_size"]),
                                  dtype=dtype)
        else:
            raise RuntimeError(f"the exported graph has an input '{name}' that verification does not know how to fill")
    return feed


def compare_logits(folder: Path, hf_model, hf_tok, genai_config: dict) -> dict:
    """NMSE, top-1 agreement and KL of the export's logits against HF fp32 on sample prompts."""
    import numpy as np
    import onnxruntime as ort
    import torch

    decoder = genai_config["model"]["decoder"]
    session = ort.InferenceSession(str(folder / decoder["filename"]), providers=["CPUExecutionProvider"])
    prompts = [(p, True) for p in PLAIN_PROMPTS] + [(_chat_text(hf_tok, q), False) for q in CHAT_PROMPTS[1:]]
    per_prompt = []
    for prompt, add_special in prompts:  # a rendered chat prompt already holds its BOS
        ids = np.asarray([hf_tok(prompt, add_special_tokens=add_special)["input_ids"]], dtype=np.int64)
        ours = session.run(["logits"], _feed(session, ids, decoder))[0][0]
        with torch.no_grad():
            ref = hf_model(torch.from_numpy(ids)).logits[0].numpy()
        per_prompt.append(logit_stats(ours, ref))
    return pool_logit_stats(per_prompt)


def logit_stats(ours, ref) -> dict:
    """One prompt's [positions, vocab] logits against the reference: NMSE, top-1 agreement, mean KL(ref || ours)
    in nats, and the squared sums that pool_logit_stats adds up."""
    import torch

    ours_t, ref_t = torch.as_tensor(ours, dtype=torch.float64), torch.as_tensor(ref, dtype=torch.float64)
    log_p, log_q = ref_t.log_softmax(-1), ours_t.log_softmax(-1)
    err, energy = float(((ours_t - ref_t) ** 2).sum()), float((ref_t ** 2).sum())
    return {"tokens": int(ref_t.shape[0]), "nmse": err / energy,
            "top1": float((ours_t.argmax(-1) == ref_t.argmax(-1)).double().mean()),
            "kl": float((log_p.exp() * (log_p - log_q)).sum(-1).mean()), "sq_err": err, "sq_ref": energy}


def pool_logit_stats(per_prompt: list[dict]) -> dict:
    """logit_stats of several prompts as one: NMSE over all their values, top-1 and KL over all positions."""
    positions = sum(r["tokens"] for r in per_prompt)
    return {"prompts": len(per_prompt), "positions": positions,
            "nmse": sum(r["sq_err"] for r in per_prompt) / sum(r["sq_ref"] for r in per_prompt),
            "top1": sum(r["top1"] * r["tokens"] for r in per_prompt) / positions,
            "kl": sum(r["kl"] * r["tokens"] for r in per_prompt) / positions, "per_prompt": per_prompt}


def check_end_of_turn(chat_model, hf_model, hf_tok) -> dict:
    """End-of-turn ids, forced stop after the reference answer, and free-running greedy chat."""
    import numpy as np
    import onnxruntime_genai as og
    import torch

    eos = int(hf_tok.eos_token_id)
    eos_in_config = eos in chat_model.eos_ids
    # HF stops where the export stops: at any of genai_config's end ids (Gemma's <end_of_turn> beside <eos>)
    stops = sorted(chat_model.eos_ids | {eos})
    runs = []
    for question in CHAT_PROMPTS:
        prompt_ids = hf_tok(_chat_text(hf_tok, question), add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            out = hf_model.generate(torch.tensor([prompt_ids]), attention_mask=torch.ones(1, len(prompt_ids), dtype=torch.long),
                                    max_new_tokens=MAX_NEW_TOKENS, do_sample=False, eos_token_id=stops,
                                    pad_token_id=hf_tok.pad_token_id if hf_tok.pad_token_id is not None else eos)
        ref = [int(t) for t in out[0, len(prompt_ids):]]
        end = next((i for i, t in enumerate(ref) if t in stops), None)
        hf_stopped = end is not None
        ref = ref[:end] if hf_stopped else ref
        ours = list(chat_model.generate_ids(prompt_ids, MAX_NEW_TOKENS))
        run = {"prompt": question, "hf_tokens": len(ref), "hf_stopped": hf_stopped,
               "onnx_tokens": len(ours), "onnx_stopped": chat_model.last.stop_reason == "eos",
               "same_tokens": ours == ref,
               "common_prefix": next((i for i, (a, b) in enumerate(zip(ours, ref)) if a != b), min(len(ours), len(ref))),
               "onnx_text": hf_tok.decode(ours, skip_special_tokens=True), "hf_text": hf_tok.decode(ref, skip_special_tokens=True)}
        k = run["common_prefix"]
        if k < min(len(ours), len(ref)):  # where the replies part: how much worse HF rates the export's token
            with torch.no_grad():
                logp = hf_model(torch.tensor([prompt_ids + ref[:k]])).logits[0, -1].double().log_softmax(-1)
            run["divergence"] = {"position": k, "hf_token": hf_tok.decode([ref[k]]), "onnx_token": hf_tok.decode([ours[k]]),
                                 "hf_logprob_gap": round(float(logp[ref[k]] - logp[ours[k]]), 4)}
        if hf_stopped:  # force the reference answer in: the next greedy token must end the turn
            params = og.GeneratorParams(chat_model.model)
            params.set_search_options(max_length=max(len(prompt_ids) + len(ref) + 4, chat_model.min_capacity),
                                      do_sample=False)
            gen = og.Generator(chat_model.model, params)
            gen.append_tokens(np.asarray(prompt_ids + ref, dtype=np.int32))
            gen.generate_next_token()
            run["forced_next_token"] = int(gen.get_next_tokens()[0])
            run["forced_stop"] = run["forced_next_token"] in chat_model.eos_ids and gen.is_done()
        runs.append(run)
    return {"eos_token_id": eos, "eos_token": hf_tok.convert_ids_to_tokens(eos),
            "genai_eos_ids": sorted(chat_model.eos_ids), "eos_in_config": eos_in_config,
            "max_new_tokens": MAX_NEW_TOKENS, "runs": runs}


def near_tie(run: dict, bounds: Bounds) -> bool:
    """The greedy reply left HF's at a token HF itself rated within `tie_nats` of its own choice."""
    div = run.get("divergence")
    return div is not None and div["hf_logprob_gap"] <= bounds.tie_nats


def judge(precision: str, tokenizer: dict, logits: dict, eot: dict) -> list[str]:
    """Every failed check as one line (empty list = passed)."""
    b = BOUNDS[precision]
    fails = []
    if not tokenizer["ok"]:
        kinds = sorted({m["kind"] for m in tokenizer["mismatches"]})
        fails.append(f"tokenizer differs from transformers ({', '.join(kinds)}) on {len(tokenizer['mismatches'])} check(s)")
    if b.max_nmse is not None and logits["nmse"] > b.max_nmse:
        fails.append(f"logits NMSE {logits['nmse']:.2e} > {b.max_nmse:.0e}")
    if b.min_top1 is not None and logits["top1"] < b.min_top1:
        fails.append(f"top-1 agreement {logits['top1']:.1%} < {b.min_top1:.0%}")
    if b.max_kl is not None and logits["kl"] > b.max_kl:
        fails.append(f"KL {logits['kl']:.3f} nats/token > {b.max_kl}")
    if not eot["eos_in_config"]:
        fails.append(f"genai_config.json eos ids {eot['genai_eos_ids']} miss the end-of-turn token "
                     f"{eot['eos_token']} ({eot['eos_token_id']}): generation would never stop")
    for run in eot["runs"]:
        if run.get("forced_stop") is False:
            fails.append(f"after the reference answer to '{run['prompt']}' the export predicts token "
                         f"{run['forced_next_token']}, not the end-of-turn token")
        if run["hf_stopped"] and not run["onnx_stopped"] and not near_tie(run, b):
            fails.append(f"greedy reply to '{run['prompt']}' did not stop at the end-of-turn token "
                         f"within {eot['max_new_tokens']} tokens (the HF model stops after {run['hf_tokens']})")
    return fails


def verify_export(folder: str | Path, hf_dir: str | Path, precision: str) -> dict:
    """Run every check on the export in `folder` against the HF model in `hf_dir`; returns the report."""
    import json

    import torch
    from transformers import AutoModelForCausalLM

    from engine.data.chat_templates import EXPORT_FALLBACK
    from engine.models.loading import tokenizer_from_dir
    from engine.runtimes.onnx_genai import OnnxChatModel

    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # its bars would interleave with the export's own lines
    folder = Path(folder)
    genai_config = json.loads((folder / "genai_config.json").read_text(encoding="utf-8"))
    hf_tok = tokenizer_from_dir(hf_dir, default_template=EXPORT_FALLBACK)
    hf_model = AutoModelForCausalLM.from_pretrained(str(hf_dir), dtype=torch.float32).eval()
    chat_model = OnnxChatModel(folder, provider="cpu")
    tokenizer = check_tokenizer(chat_model, hf_tok)
    logits = compare_logits(folder, hf_model, hf_tok, genai_config)
    eot = check_end_of_turn(chat_model, hf_model, hf_tok)
    failures = judge(precision, tokenizer, logits, eot)
    free_stops = sum(r["onnx_stopped"] for r in eot["runs"] if r["hf_stopped"])
    return {"passed": not failures, "failures": failures, "precision": precision, "provider": "cpu",
            "bounds": asdict(BOUNDS[precision]), "tokenizer": tokenizer, "logits": logits, "end_of_turn": eot,
            "summary": {"nmse": logits["nmse"], "top1": logits["top1"], "kl": logits["kl"],
                        "tokenizer_ok": tokenizer["ok"],
                        "free_run_stops": f"{free_stops}/{sum(r['hf_stopped'] for r in eot['runs'])}",
                        "same_greedy_text": f"{sum(r['same_tokens'] for r in eot['runs'])}/{len(eot['runs'])}"}}
