"""Prove an exported GGUF right with real llama.cpp: token ids, logits, and that a chat stops.

    ref = HfReference(model_dir)                  # HF tokenizer + model in fp32, loaded once
    report = verify_gguf(Path("model-f16.gguf"), ref, "f16")
    print(format_table([report]))

Three checks, each against the HF model the GGUF came from:
  tokens  llama.cpp's token ids equal the HF tokenizer's on sample strings: plain text with
          BOS/EOS handling, digits, whitespace, unicode, code, and chat-template renderings
          with their special tokens.
  logits  next-token logits on sample prompts: NMSE (sum of squared differences over sum of
          squares), top-1 agreement and mean KL(HF || GGUF). f32/f16 must reach NMSE <= 1e-4
          and top-1 >= 99%, where a position whose two best HF logits lie within the numeric noise
          (4x the RMS logit error there) counts as agreeing whichever llama.cpp picks; the raw
          figure and the number of such ties are both reported. Quantised types: figures reported
          (they feed --quant auto).
  stops   greedy chat generation in llama.cpp ends on an end-of-generation token. Judged
          against HF: if the HF model stops within the budget, llama.cpp must stop too; a model
          that never stops in HF either (an untrained random model) makes this check 'n/a'.
Plus static facts: llama.cpp's EOS id and end-of-turn token match HF's, and the chat template
stored in the GGUF is the tokenizer's.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional

# Bounds from the issue: llama.cpp's own converter reaches NMSE ~2e-6 on SmolLM2 at f16.
UNQUANTISED = ("f32", "f16")
MAX_NMSE = 1e-4
MIN_TOP1 = 0.99

SAMPLE_TEXTS = [
    "Hello world",
    "The Quillon Q7 lantern costs $129.99 and ships in 3-5 days.",
    "  leading spaces,\ttabs\n\nand   runs of  spaces \n",
    "Numbers: 1 12 123 1234 12345 3.14159 1,000,000 2024-11-23",
    "Unicode: caf\u00e9 na\u00efve Stra\u00dfe \u65e5\u672c\u8a9e \U0001f600 \U0001f999 \u0416\u0438\u0437\u043d\u044c",
    "Code: def f(x):\n    return x ** 2  # square\n",
    "I've been 'told he's there, 'RE you sure? I'LL try, we'Ve a'lL seen it.",
]
# Prompts for the logits comparison: about 300 positions, so one near-tie flipping at f16
# moves top-1 agreement by a third of a percent, not the whole 1% margin.
LOGIT_TEXTS = [
    "The lighthouse keeper climbed the spiral stairs at dusk, lit the great lamp, and wrote in her log that "
    "the sea was calm and the wind came from the west. Three ships passed before midnight; the last one "
    "signalled twice and turned north toward the harbour, where the fishermen were already asleep.",
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n    a, b = 0, 1\n    for _ in range(n):\n"
    "        a, b = b, a + b\n    return a\n\nprint([fibonacci(i) for i in range(10)])\n",
    "Photosynthesis converts light energy into chemical energy. Plants absorb carbon dioxide and water, and "
    "with sunlight they produce glucose and oxygen. This process takes place mainly in the leaves.",
]
LOGIT_CHAT = [{"role": "user", "content": "Give me three tips for staying focused while studying."},
              {"role": "assistant", "content": "1. Put your phone in another room. 2. Work in 25-minute blocks "
                                               "with short breaks. 3. Write down what you want to finish first."},
              {"role": "user", "content": "Thanks! Which one matters most?"}]
CHAT_QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]


@dataclass
class VerifyReport:
    """What verification found for one GGUF file."""

    file: str
    type: str
    size_bytes: int
    tokens_checked: int = 0
    tokens_matching: int = 0
    tokens_spm_convention: int = 0    # differ only by llama.cpp's SentencePiece space rule (a warning)
    token_mismatches: list = field(default_factory=list)
    nmse: Optional[float] = None
    nmse_max_prompt: Optional[float] = None
    top1: Optional[float] = None
    top1_ties: int = 0                # disagreements where HF's own top two are within the numeric noise
    kl_mean: Optional[float] = None
    positions: int = 0
    eos_id_matches: Optional[bool] = None
    eot_is_end_of_generation: Optional[bool] = None
    template_matches: Optional[bool] = None
    hf_stops: Optional[bool] = None
    gguf_stops: Optional[bool] = None
    reply: str = ""
    stop_check: str = "n/a"           # pass / fail / n/a
    logits_check: str = "reported"    # pass / fail / reported
    passed: bool = False
    problems: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def _nmse(a, b) -> float:
    import numpy as np

    return float(np.sum((a.astype(np.float64) - b) ** 2) / max(np.sum(b.astype(np.float64) ** 2), 1e-30))


def _near_ties(got, want) -> int:
    """Positions where llama.cpp's pick differs from HF's but HF scores both within 4x the RMS logit error.

    With f16 weights every logit moves by ~1e-2; where HF's best two tokens are closer than that,
    which one wins is rounding, not a conversion error.
    """
    import numpy as np

    pick, best = got.argmax(-1), want.argmax(-1)
    rows = np.nonzero(pick != best)[0]
    ties = 0
    for r in rows:
        noise = float(np.sqrt(np.mean((got[r].astype(np.float64) - want[r]) ** 2)))
        if want[r, best[r]] - want[r, pick[r]] <= 4 * noise:
            ties += 1
    return ties


def _log_softmax(x):
    import numpy as np

    x = x.astype(np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


def reference_dtype(n_params: int):
    """fp32 when it fits comfortably in RAM (the comparison is against fp32), else bf16."""
    import os

    import torch

    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        ram = 16e9
    return torch.float32 if n_params * 4 < ram * 0.5 else torch.bfloat16


class HfReference:
    """The HF model the GGUF came from, in fp32, with everything verification compares against."""

    def __init__(self, model_dir: Path, max_new_tokens: int = 48):
        import torch
        from transformers import AutoModelForCausalLM

        from exporters.gguf.chat_format import SAMPLE_CONVERSATIONS, TemplateNotUnderstood, analyse_tokenizer
        from exporters.gguf.vocab import end_of_turn_id, load_hf_tokenizer

        self.model_dir = Path(model_dir)
        self.tokenizer = tok = load_hf_tokenizer(self.model_dir)
        try:
            self.turns = analyse_tokenizer(tok)
        except TemplateNotUnderstood:
            self.turns = None
        self.eos_id = tok.eos_token_id
        self.eot_id = end_of_turn_id(tok, self.turns)
        self.stop_ids = sorted({i for i in (self.eos_id, self.eot_id) if i is not None})
        self.max_new_tokens = max_new_tokens
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # our own progress bar is already on screen
        self.model = AutoModelForCausalLM.from_pretrained(str(self.model_dir), dtype=torch.float32)
        n_params = sum(p.numel() for p in self.model.parameters())
        dtype = reference_dtype(n_params)
        if dtype != torch.float32:
            self.model = self.model.to(dtype)
        self.dtype = str(dtype).replace("torch.", "")
        self.model.eval()

        def render(msgs, gen):
            return tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=gen)

        # (text, add_special_tokens): plain strings with BOS/EOS handling, chat renderings without
        # (apply_chat_template does not add them either), and special tokens written inline.
        specials = " ".join(t for t in (tok.bos_token, tok.eos_token) if t)
        self.token_cases = [(t, True) for t in SAMPLE_TEXTS] + [(f"Before {specials} after", True)]
        for conv in SAMPLE_CONVERSATIONS:
            try:
                self.token_cases.append((render(conv, True), False))
            except Exception:
                continue  # e.g. a template that refuses system messages
        self.chat_prompt = render(CHAT_QUESTION, True)
        self.logit_prompts = [self.encode(self.chat_prompt, False), self.encode(render(LOGIT_CHAT, True), False)]
        self.logit_prompts += [self.encode(t, True) for t in LOGIT_TEXTS]
        self.logits = [self._forward(ids) for ids in self.logit_prompts]
        self.reply_ids, self.hf_stops = self._greedy(self.encode(self.chat_prompt, False))

    def encode(self, text: str, add_special: bool) -> list:
        return list(self.tokenizer(text, add_special_tokens=add_special)["input_ids"])

    def _forward(self, ids: list):
        import torch

        with torch.no_grad():
            return self.model(torch.tensor([ids])).logits[0].float().numpy()

    def _greedy(self, ids: list) -> tuple[list, bool]:
        import torch

        with torch.no_grad():
            out = self.model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                      max_new_tokens=self.max_new_tokens, do_sample=False,
                                      eos_token_id=self.stop_ids, pad_token_id=self.stop_ids[0] if self.stop_ids else 0)
        new = out[0, len(ids):].tolist()
        return new, bool(new) and new[-1] in self.stop_ids

    def close(self) -> None:
        self.model = None


class LegacySentencePiece:
    """Token ids under the SentencePiece rule llama.cpp follows: '\u2581' before every text piece.

    transformers 5 tokenises Llama 2 / Mistral / Phi-3 style vocabularies with a Metaspace
    that prefixes only the start of the input (and not at all when it starts with a space);
    SentencePiece itself, the hub's original tokenizer.json and llama.cpp prefix every piece of
    text between special tokens. When llama.cpp's ids equal this rule's ids, a difference from
    HF is that convention, not an export error.
    """

    def __init__(self, model_dir: Path):
        from tokenizers import Tokenizer

        tj = json.loads((Path(model_dir) / "tokenizer.json").read_text(encoding="utf-8"))
        tj["pre_tokenizer"] = None
        tj["normalizer"] = {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": "\u2581"}, {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]}
        self.tok = Tokenizer.from_str(json.dumps(tj))

    def encode(self, text: str, bos_id: Optional[int], add_bos: bool) -> list:
        ids = self.tok.encode(text, add_special_tokens=False).ids
        return ([bos_id] if add_bos and bos_id is not None else []) + ids


def open_llama(path: Path, n_ctx: int = 512, lora: Optional[Path] = None):
    """A llama.cpp model from a GGUF file (plus a LoRA adapter GGUF), quiet, logits for every position."""
    import os

    from exporters.gguf.quantize import require_llama_cpp

    require_llama_cpp("Verification")
    from engine.runtimes.llama import load_llama
    from exporters.gguf.quantize import quiet_llama_logs

    quiet_llama_logs()

    return load_llama(path, n_ctx=n_ctx, logits_all=True, verbose=False, n_threads=max(1, os.cpu_count() or 1),
                 lora_path=str(lora) if lora else None)


def _greedy_llama(llm, ids: list, budget: int) -> tuple[list, bool]:
    import llama_cpp
    import numpy as np

    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    llm.reset()
    llm.eval(ids)
    out = []
    for _ in range(budget):
        tok = int(np.argmax(llm.scores[llm.n_tokens - 1]))
        out.append(tok)
        if llama_cpp.llama_vocab_is_eog(vocab, tok):
            return out, True
        llm.eval([tok])
    return out, False


def verify_gguf(path: Path, ref: HfReference, out_type: str, lora: Optional[Path] = None,
                name: Optional[str] = None) -> VerifyReport:
    """Run every check of one GGUF (with a LoRA adapter GGUF applied, if given) against the HF reference.

    `name` is the file name the report gives (the final name when a staged file is verified);
    by default the name of the file checked (the adapter's, with `lora`).
    """
    import llama_cpp
    import numpy as np

    start = time.perf_counter()
    path = Path(path)
    shown = Path(lora) if lora else path
    rep = VerifyReport(name or shown.name, out_type, shown.stat().st_size)
    n_ctx = max(len(ids) for ids in ref.logit_prompts) + 2 * ref.max_new_tokens + 64
    n_ctx = max(n_ctx, max(len(ref.encode(t, s)) for t, s in ref.token_cases) + 8)
    llm = open_llama(path, n_ctx=n_ctx, lora=lora)
    spm_prefix = llm.metadata.get("tokenizer.ggml.model") == "llama" and \
        llm.metadata.get("tokenizer.ggml.add_space_prefix", "true") == "true"
    try:
        # tokens
        legacy = None
        for text, add_special in ref.token_cases:
            want = ref.encode(text, add_special)
            got = llm.tokenize(text.encode("utf-8"), add_bos=add_special, special=True)
            rep.tokens_checked += 1
            if got == want:
                rep.tokens_matching += 1
                continue
            if spm_prefix and (ref.model_dir / "tokenizer.json").is_file():
                legacy = legacy or LegacySentencePiece(ref.model_dir)
                adds_bos = llm.metadata.get("tokenizer.ggml.add_bos_token") == "true"
                if got == legacy.encode(text, ref.tokenizer.bos_token_id, add_special and adds_bos):
                    rep.tokens_spm_convention += 1
                    continue
            if len(rep.token_mismatches) < 3:
                at = next((i for i, (a, b) in enumerate(zip(got, want)) if a != b), min(len(got), len(want)))
                rep.token_mismatches.append({"text": text[:80], "hf": want[max(0, at - 2): at + 4],
                                             "llama_cpp": got[max(0, at - 2): at + 4], "at": at})
        # logits
        sq_err = sq_ref = 0.0
        agree = total = 0
        kls, per_prompt = [], []
        for ids, want in zip(ref.logit_prompts, ref.logits):
            llm.reset()
            llm.eval(ids)
            got = np.array(llm.scores[: len(ids)], dtype=np.float32)
            per_prompt.append(_nmse(got, want))
            sq_err += float(np.sum((got.astype(np.float64) - want) ** 2))
            sq_ref += float(np.sum(want.astype(np.float64) ** 2))
            agree += int(np.sum(got.argmax(-1) == want.argmax(-1)))
            rep.top1_ties += _near_ties(got, want)
            total += len(ids)
            lp, lq = _log_softmax(want), _log_softmax(got)
            kls.append(np.sum(np.exp(lp) * (lp - lq), axis=-1))
        rep.nmse = sq_err / max(sq_ref, 1e-30)
        rep.nmse_max_prompt = max(per_prompt)
        rep.top1 = agree / max(total, 1)
        rep.kl_mean = float(np.concatenate(kls).mean())
        rep.positions = total
        # static end-of-turn facts
        vocab = llama_cpp.llama_model_get_vocab(llm.model)
        rep.eos_id_matches = ref.eos_id is None or llama_cpp.llama_vocab_eos(vocab) == ref.eos_id
        rep.eot_is_end_of_generation = ref.eot_id is None or bool(llama_cpp.llama_vocab_is_eog(vocab, ref.eot_id))
        stored = llm.metadata.get("tokenizer.chat_template")
        rep.template_matches = stored == ref.tokenizer.chat_template
        # dynamic: does a greedy chat stop?
        reply, stops = _greedy_llama(llm, ref.encode(ref.chat_prompt, False), 2 * ref.max_new_tokens)
        rep.gguf_stops, rep.hf_stops = stops, ref.hf_stops
        rep.reply = ref.tokenizer.decode(reply, skip_special_tokens=True).strip()[:200]
    finally:
        llm.close()
    _judge(rep, out_type)
    rep.seconds = round(time.perf_counter() - start, 2)
    return rep


def _judge(rep: VerifyReport, out_type: str) -> None:
    wrong = rep.tokens_checked - rep.tokens_matching - rep.tokens_spm_convention
    if wrong:
        rep.problems.append(f"token ids differ from the HF tokenizer on {wrong} of {rep.tokens_checked} strings")
    if rep.tokens_spm_convention:
        rep.warnings.append(
            f"{rep.tokens_spm_convention} string(s) tokenise differently only because llama.cpp (like SentencePiece "
            f"and the original hub tokenizer) puts '\u2581' before the text after each special token and before "
            f"leading spaces, while transformers 5 prefixes only the start of the input")
    if out_type in UNQUANTISED:
        # top-1 agreement counts numeric ties (HF's own two best within the noise) as agreeing
        decisive = rep.top1 + rep.top1_ties / max(rep.positions, 1) if rep.top1 is not None else 0.0
        ok = rep.nmse is not None and rep.nmse <= MAX_NMSE and decisive >= MIN_TOP1
        rep.logits_check = "pass" if ok else "fail"
        if not ok:
            rep.problems.append(f"logits differ from HF: NMSE {rep.nmse:.2e} (bound {MAX_NMSE:g}), top-1 "
                                f"{rep.top1:.1%} + {rep.top1_ties} near-tie(s) (bound {MIN_TOP1:.0%})")
    elif rep.nmse is not None and rep.nmse > 0.5:
        rep.logits_check = "fail"  # nothing quantised is that far off unless the file is broken
        rep.problems.append(f"logits are unrelated to HF's (NMSE {rep.nmse:.2f}): the file is broken")
    if not rep.eos_id_matches:
        rep.problems.append("llama.cpp's EOS token is not the HF tokenizer's")
    if not rep.eot_is_end_of_generation:
        rep.problems.append("the chat template's end-of-turn token does not end generation in llama.cpp")
    if rep.template_matches is False:
        rep.problems.append("the chat template stored in the GGUF differs from the tokenizer's")
    if rep.hf_stops:
        rep.stop_check = "pass" if rep.gguf_stops else "fail"
        if not rep.gguf_stops:
            rep.problems.append("the HF model ends its chat reply but llama.cpp keeps generating")
    else:
        rep.stop_check = "n/a"
    rep.passed = not rep.problems


def format_table(reports: list) -> str:
    """A plain-text table of verification results, one row per file."""
    head = ("file", "type", "size", "tokens", "NMSE", "top-1", "KL", "stops", "result")
    rows = [head]
    for r in reports:
        tokens = f"{r.tokens_matching}/{r.tokens_checked}" + (f" (+{r.tokens_spm_convention} spm)" if r.tokens_spm_convention else "")
        rows.append((r.file, r.type, f"{r.size_bytes / 1e6:.1f} MB", tokens,
                     "-" if r.nmse is None else f"{r.nmse:.2e}",
                     "-" if r.top1 is None else f"{r.top1:.1%}" + (f" ({r.top1_ties} tie)" if r.top1_ties else ""),
                     "-" if r.kl_mean is None else f"{r.kl_mean:.4f}",
                     {"pass": "yes", "fail": "NO", "n/a": "n/a"}[r.stop_check],
                     "pass" if r.passed else "FAIL"))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(head))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    for r in reports:
        for p in r.problems:
            lines.append(f"  {r.file}: {p}")
        for p in r.warnings:
            lines.append(f"  {r.file} (note): {p}")
    return "\n".join(lines)


def save_reports(path: Path, reports: list, extra: Optional[dict] = None) -> None:
    """Merge reports into verify.json (one entry per file, earlier exports of other types kept)."""
    from exporters.safe_write import write_text_atomic

    path = Path(path)
    data = {}
    if path.is_file():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            data = {}
    files = data.get("files", {})
    for r in reports:
        files[r.file] = r.to_dict()
    data["files"] = files
    data["bounds"] = {"unquantised_types": list(UNQUANTISED), "max_nmse": MAX_NMSE, "min_top1": MIN_TOP1}
    if extra:
        data.update(extra)
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")
