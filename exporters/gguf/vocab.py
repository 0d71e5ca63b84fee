"""The tokenizer part of a GGUF: tokens, types, scores or merges, special ids, chat template.

Three kinds of tokenizer folders, tried in order (a registry, first match wins):

  byte-level BPE      tokenizer.json with a ByteLevel pre-tokenizer (Llama 3, Qwen, SmolLM2, GPT-2)
                      -> tokenizer.ggml.model 'gpt2', merges, and the pre-tokenizer name
  SentencePiece file  tokenizer.model (Llama 2, Mistral, Gemma, Phi-3) -> model 'llama', scores
  SentencePiece json  tokenizer.json holding a SentencePiece-style BPE (what transformers 5 saves
                      for those families: no tokenizer.model) -> model 'llama', scores from merge ranks

Special token ids, add_bos/add_eos and the end-of-turn token are taken from what the
HF tokenizer and its chat template actually *do* (encode a string, render a turn),
not from guessing config fields: that is where exports usually go wrong (a model
that never stops).
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from engine.errors import EdgetuneError

# gguf.TokenType values, repeated so this module imports without gguf
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6


@dataclass
class GgufVocab:
    """Everything under tokenizer.* in a GGUF."""

    kind: str                      # which reader produced it
    model: str                     # tokenizer.ggml.model: 'gpt2' or 'llama'
    pre: Optional[str]             # tokenizer.ggml.pre
    tokens: list
    types: list
    scores: Optional[list] = None
    merges: Optional[list] = None
    special_ids: dict = field(default_factory=dict)  # bos, eos, unk, pad, eot -> id
    add_bos: bool = False
    add_eos: bool = False
    add_space_prefix: Optional[bool] = None
    chat_template: Optional[str] = None

    def write(self, w) -> None:
        """Add the tokenizer.* keys to a GGUFWriter."""
        w.add_tokenizer_model(self.model)
        if self.pre:
            w.add_tokenizer_pre(self.pre)
        w.add_token_list(self.tokens)
        if self.scores is not None:
            w.add_token_scores(self.scores)
        w.add_token_types(self.types)
        if self.merges:
            w.add_token_merges(self.merges)
        writers = {"bos": w.add_bos_token_id, "eos": w.add_eos_token_id, "unk": w.add_unk_token_id,
                   "pad": w.add_pad_token_id, "eot": w.add_eot_token_id}
        for role, tid in self.special_ids.items():
            writers[role](int(tid))
        w.add_add_bos_token(self.add_bos)
        w.add_add_eos_token(self.add_eos)
        if self.add_space_prefix is not None:
            w.add_add_space_prefix(self.add_space_prefix)
        if self.chat_template:
            w.add_chat_template(self.chat_template)


@dataclass
class TokenizerFiles:
    """What a model folder holds for its tokenizer."""

    folder: Path
    tokenizer_json: Optional[dict]
    sp_model: Optional[Path]
    n_vocab: int                   # rows of the embedding (config vocab_size)
    pre_override: Optional[str] = None  # --pre-tokenizer: the user names llama.cpp's pre-tokenizer


# kind name -> (matches(files) -> bool, read(files) -> GgufVocab)
VOCAB_READERS: list[tuple[str, Callable, Callable]] = []


def vocab_reader(kind: str, matches: Callable[[TokenizerFiles], bool]):
    """Decorator: register a reader for one kind of tokenizer folder."""

    def deco(fn):
        VOCAB_READERS.append((kind, matches, fn))
        return fn

    return deco


def _pre_steps(tj: Optional[dict]) -> list:
    from exporters.gguf.pretokenizer import _steps

    return [s.get("type") for s in _steps((tj or {}).get("pre_tokenizer"))]


def _is_byte_level(files: TokenizerFiles) -> bool:
    tj = files.tokenizer_json
    return bool(tj) and tj.get("model", {}).get("type") == "BPE" and "ByteLevel" in _pre_steps(tj)


def _is_sentencepiece_json(files: TokenizerFiles) -> bool:
    tj = files.tokenizer_json
    if not tj or tj.get("model", {}).get("type") != "BPE" or "ByteLevel" in _pre_steps(tj):
        return False
    text = json.dumps([tj.get("pre_tokenizer"), tj.get("normalizer")], ensure_ascii=False)
    return "Metaspace" in text or "\u2581" in text


def _added(tj: Optional[dict]) -> dict:
    return {int(t["id"]): t for t in (tj or {}).get("added_tokens", [])}


def looks_special(text: str) -> bool:
    """Tokens llama.cpp must treat as control even when HF forgot to flag them special."""
    return (text.startswith("<|") and text.endswith("|>")) or (text.startswith("<unused") and text.endswith(">"))


def _pad_to(files: TokenizerFiles, tokens: list, types: list, scores: Optional[list]) -> None:
    if len(tokens) > files.n_vocab:
        raise EdgetuneError(
            f"The tokenizer in {files.folder} has {len(tokens)} tokens but the model's embedding has only "
            f"{files.n_vocab} rows (config.json vocab_size). The tokenizer does not belong to this model: copy "
            f"the tokenizer files the model was trained with into {files.folder}."
        )
    for i in range(len(tokens), files.n_vocab):  # embedding rows no token uses
        tokens.append(f"[PAD{i}]")
        types.append(UNUSED)
        if scores is not None:
            scores.append(-10000.0)


@vocab_reader("byte-level BPE", _is_byte_level)
def _read_byte_level(files: TokenizerFiles) -> GgufVocab:
    from exporters.gguf.pretokenizer import detect_pre_tokenizer

    tj = files.tokenizer_json
    vocab = dict(tj["model"]["vocab"])
    added = _added(tj)
    for tid, t in added.items():
        vocab[t["content"]] = tid
    by_id = {tid: text for text, tid in vocab.items()}
    size = max(by_id) + 1
    tokens, types = [], []
    for i in range(size):
        text = by_id.get(i)
        if text is None:
            tokens.append(f"[PAD{i}]")
            types.append(UNUSED)
        elif i in added:
            tokens.append(text)
            types.append(CONTROL if added[i].get("special") or looks_special(text) else USER_DEFINED)
        else:
            tokens.append(text)
            types.append(NORMAL)
    _pad_to(files, tokens, types, None)
    merges = []
    for m in tj["model"].get("merges", []):
        if isinstance(m, str):
            merges.append(m)
        else:  # transformers >= 4.45 stores pairs; llama.cpp wants "a b" with spaces escaped as U+0120
            merges.append(" ".join("".join(chr(ord(c) + 256) if c == " " else c for c in part) for part in m))
    pre = files.pre_override or detect_pre_tokenizer(tj, str(files.folder))
    from exporters.gguf.pretokenizer import _steps

    byte_level = next(s for s in _steps(tj.get("pre_tokenizer")) if s.get("type") == "ByteLevel")
    return GgufVocab("byte-level BPE", "gpt2", pre, tokens, types, merges=merges,
                     add_space_prefix=bool(byte_level.get("add_prefix_space", False)))


def _is_sp_file(files: TokenizerFiles) -> bool:
    return files.sp_model is not None and not _is_byte_level(files)


@vocab_reader("SentencePiece tokenizer.model", _is_sp_file)
def _read_sp_model(files: TokenizerFiles) -> GgufVocab:
    from sentencepiece import SentencePieceProcessor

    sp = SentencePieceProcessor()
    sp.LoadFromFile(str(files.sp_model))
    tokens, scores, types = [], [], []
    for i in range(sp.vocab_size()):
        tokens.append(sp.IdToPiece(i).encode("utf-8"))
        scores.append(float(sp.GetScore(i)))
        if sp.IsUnknown(i):
            types.append(UNKNOWN)
        elif sp.IsControl(i):
            types.append(CONTROL)
        elif sp.IsUnused(i):
            types.append(UNUSED)
        elif sp.IsByte(i):
            types.append(BYTE)
        else:
            types.append(NORMAL)
    _overlay_added(files, tokens, types, scores)
    _pad_to(files, tokens, types, scores)
    # A dummy prefix means "Hello" is tokenised as "▁Hello"; llama.cpp must do the same.
    dummy_prefix = sp.EncodeAsPieces("a")[0].startswith("\u2581")
    return GgufVocab("SentencePiece tokenizer.model", "llama", "default", tokens, types, scores=scores,
                     add_space_prefix=dummy_prefix)


def _overlay_added(files: TokenizerFiles, tokens: list, types: list, scores: list) -> None:
    """Tokens added on top of the SentencePiece model (chat markers) keep their HF ids and flags."""
    for tid, t in sorted(_added(files.tokenizer_json).items()):
        text = t["content"]
        while tid >= len(tokens):
            tokens.append(f"[PAD{len(tokens)}]".encode())
            types.append(UNUSED)
            scores.append(-10000.0)
        if types[tid] == BYTE:
            continue
        # HF's flags win, <unk>/<s>/</s> included: they decide how HF splits text around them.
        special = t.get("special") or looks_special(text)
        tokens[tid] = (text if special else text.replace("\u2581", " ")).encode("utf-8")
        types[tid] = CONTROL if special else USER_DEFINED
        scores[tid] = -1000.0


@vocab_reader("SentencePiece tokenizer.json", _is_sentencepiece_json)
def _read_sp_json(files: TokenizerFiles) -> GgufVocab:
    import re

    tj = files.tokenizer_json
    model = tj["model"]
    by_id = {tid: text for text, tid in model["vocab"].items()}
    # llama.cpp's SentencePiece tokenizer merges the pair whose result scores highest; a
    # SentencePiece BPE ranks merges by that score, so -rank of the first merge making a token
    # reproduces the order. Tokens no merge makes (characters, bytes) are never merge results.
    rank = {}
    for r, m in enumerate(model.get("merges", [])):
        a, b = m.split(" ", 1) if isinstance(m, str) else m
        rank.setdefault(a + b, r)
    floor = -float(len(rank) + 1)
    tokens, types, scores = [], [], []
    for i in range(max(by_id) + 1):
        text = by_id.get(i)
        if text is None:
            tokens.append(f"[PAD{i}]".encode())
            types.append(UNUSED)
            scores.append(-10000.0)
            continue
        tokens.append(text.encode("utf-8"))
        scores.append(-float(rank[text]) if text in rank else floor)
        if text == model.get("unk_token"):
            types.append(UNKNOWN)
        elif re.fullmatch(r"<0x[0-9A-Fa-f]{2}>", text):
            types.append(BYTE)
        else:
            types.append(NORMAL)
    _overlay_added(files, tokens, types, scores)
    _pad_to(files, tokens, types, scores)
    text = json.dumps([tj.get("pre_tokenizer"), tj.get("normalizer")])
    prepends = '"prepend_scheme": "first"' in text or '"prepend_scheme": "always"' in text or \
        ('"Prepend"' in text) or ('"add_prefix_space": true' in text)
    return GgufVocab("SentencePiece tokenizer.json", "llama", "default", tokens, types, scores=scores,
                     add_space_prefix=prepends)


def _dedupe(vocab: GgufVocab, files: TokenizerFiles) -> None:
    """llama.cpp aborts on a vocabulary with the same text twice; keep the id HF actually produces.

    This happens when a token added on top of a SentencePiece model repeats one of its
    pieces: HF matches added tokens first, so the piece's own id is unreachable.
    """
    added = {t["content"]: tid for tid, t in _added(files.tokenizer_json).items()}
    seen: dict = {}
    for i, t in enumerate(vocab.tokens):
        seen.setdefault(t, []).append(i)
    for text, ids in seen.items():
        if len(ids) < 2:
            continue
        as_str = text.decode("utf-8", errors="replace") if isinstance(text, bytes) else text
        keep = added.get(as_str)
        if keep not in ids:
            raise EdgetuneError(
                f"The tokenizer in '{files.folder}' has the token {as_str!r} at ids {ids}, and llama.cpp needs every "
                f"token text once. Fix tokenizer.json (remove the duplicate token)."
            )
        for i in ids:
            if i != keep:
                vocab.tokens[i] = f"[UNUSED_DUPLICATE{i}]".encode() if isinstance(text, bytes) else f"[UNUSED_DUPLICATE{i}]"
                vocab.types[i] = UNUSED


def tokenizer_files(model_dir: Path, n_vocab: int) -> TokenizerFiles:
    """Find the tokenizer files of an HF folder (error naming the fix when there are none)."""
    model_dir = Path(model_dir)
    tj_path, sp_path = model_dir / "tokenizer.json", model_dir / "tokenizer.model"
    if not tj_path.is_file() and not sp_path.is_file():
        raise EdgetuneError(
            f"'{model_dir}' has no tokenizer (neither tokenizer.json nor tokenizer.model). A GGUF must carry the "
            f"tokenizer: copy the tokenizer files of the model it was fine-tuned from into that folder."
        )
    tj = None
    if tj_path.is_file():
        try:
            tj = json.loads(tj_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise EdgetuneError(f"Cannot read {tj_path}: {e}. Re-save the tokenizer with save_pretrained().") from None
    return TokenizerFiles(model_dir, tj, sp_path if sp_path.is_file() else None, n_vocab)


def load_hf_tokenizer(model_dir: Path):
    """The HF tokenizer of a folder as training loads it (AutoTokenizer), with the chat template training
    used (ours when it has none).

    AutoTokenizer, not the class named in tokenizer_config.json: transformers 5 picks the class from the
    model type and that class may replace the file's splitting rules (a Qwen2 model gets Qwen2's regex).
    """
    from transformers import AutoTokenizer

    from engine.data.chat_templates import EXPORT_FALLBACK
    from engine.data.render import ensure_chat_template

    try:
        tok = AutoTokenizer.from_pretrained(str(model_dir))
    except Exception as e:
        raise EdgetuneError(f"Cannot load the tokenizer of '{model_dir}' ({type(e).__name__}: {e}).") from None
    ensure_chat_template(tok, default=EXPORT_FALLBACK)  # a GGUF always carries a template: Ollama and chat need one
    return tok


def end_of_turn_id(hf_tok, fmt) -> Optional[int]:
    """The first special token after an assistant reply in the chat template (e.g. <|im_end|>)."""
    if fmt is None:
        return hf_tok.eos_token_id
    ids = hf_tok(fmt.suffix.get("assistant", ""), add_special_tokens=False)["input_ids"]
    special = set(hf_tok.all_special_ids) | {tid for tid, t in hf_tok.added_tokens_decoder.items() if t.special}
    for tid in ids:
        if tid in special or looks_special(hf_tok.convert_ids_to_tokens(tid) or ""):
            return tid
    return hf_tok.eos_token_id  # a plain-text template: the reply ends with EOS


@dataclass
class TokenizerFacts:
    """What the HF tokenizer does, as plain data: special ids, BOS/EOS adding, chat template and turns."""

    special_ids: dict
    add_bos: bool
    add_eos: bool
    chat_template: Optional[str]
    turns: object  # chat_format.TurnFormat, or None when the template could not be read
    pre_tokenizer: Optional[dict] = None  # the splitting rules HF really applies (may differ from the file)
    normalizer: Optional[dict] = None


def tokenizer_facts(hf_tok) -> TokenizerFacts:
    """Observe an HF tokenizer: encode a probe, render the chat template, find the end-of-turn token."""
    from exporters.gguf.chat_format import TemplateNotUnderstood, analyse_tokenizer

    try:
        fmt = analyse_tokenizer(hf_tok)
    except TemplateNotUnderstood:
        fmt = None
    ids = {"bos": hf_tok.bos_token_id, "eos": hf_tok.eos_token_id, "unk": hf_tok.unk_token_id,
           "pad": hf_tok.pad_token_id, "eot": end_of_turn_id(hf_tok, fmt)}
    probe = hf_tok("Hello world", add_special_tokens=True)["input_ids"]
    backend = getattr(hf_tok, "backend_tokenizer", None)
    state = lambda part: json.loads(part.__getstate__()) if part is not None else None  # noqa: E731
    return TokenizerFacts(
        pre_tokenizer=state(backend.pre_tokenizer) if backend is not None else None,
        normalizer=state(backend.normalizer) if backend is not None else None,
        special_ids={k: int(v) for k, v in ids.items() if v is not None},
        add_bos=hf_tok.bos_token_id is not None and probe[:1] == [hf_tok.bos_token_id],
        add_eos=hf_tok.eos_token_id is not None and len(probe) > 1 and probe[-1] == hf_tok.eos_token_id,
        chat_template=hf_tok.chat_template if isinstance(hf_tok.chat_template, str) else None,
        turns=fmt,
    )


def build_vocab(files: TokenizerFiles, facts: TokenizerFacts) -> GgufVocab:
    """The GgufVocab from the tokenizer files (first matching reader) and the observed facts."""
    if files.tokenizer_json is not None and (facts.pre_tokenizer is not None or facts.normalizer is not None):
        # What HF applies wins over what the file says (see load_hf_tokenizer).
        files.tokenizer_json = {**files.tokenizer_json, "pre_tokenizer": facts.pre_tokenizer,
                                "normalizer": facts.normalizer}
    for kind, matches, read in VOCAB_READERS:
        if matches(files):
            vocab = read(files)
            break
    else:
        kinds = ", ".join(k for k, _, _ in VOCAB_READERS)
        mtype = (files.tokenizer_json or {}).get("model", {}).get("type")
        raise EdgetuneError(
            f"The tokenizer in '{files.folder}' (tokenizer.json model type {mtype!r}) is not one llama.cpp can use "
            f"here; supported: {kinds}."
        )
    _dedupe(vocab, files)
    vocab.chat_template = facts.chat_template
    vocab.special_ids = {k: v for k, v in facts.special_ids.items() if v < len(vocab.tokens)}
    vocab.add_bos, vocab.add_eos = facts.add_bos, facts.add_eos
    return vocab


def read_vocab(model_dir: Path, n_vocab: int, hf_tok=None, pre_tokenizer: Optional[str] = None) -> tuple[GgufVocab, object]:
    """The GgufVocab of a model folder and the TurnFormat of its chat template (None if unreadable)."""
    files = tokenizer_files(model_dir, n_vocab)
    files.pre_override = pre_tokenizer
    facts = tokenizer_facts(hf_tok or load_hf_tokenizer(model_dir))
    return build_vocab(files, facts), facts.turns


def read_vocab_isolated(model_dir: Path, n_vocab: int, pre_tokenizer: Optional[str] = None) -> tuple:
    """`read_vocab`, run in a child process unless transformers is already loaded here.

    Reading the tokenizer the way training did needs transformers, which with torch is
    ~400 MB of resident memory before any weight is touched. The conversion itself needs
    only numpy, so the CLI keeps its own footprint at about one tensor by asking a short-
    lived child for the tokenizer's behaviour (a few ids and strings, pickled back) and
    building the token lists itself from the files. The child hides torch from
    transformers (tokenizers do not need it): it peaks at ~145 MB instead of ~415 MB.
    """
    import pickle
    import subprocess

    if "transformers" in sys.modules:
        return read_vocab(model_dir, n_vocab, None, pre_tokenizer)
    files = tokenizer_files(model_dir, n_vocab)  # fail fast, here, on a folder without a tokenizer
    files.pre_override = pre_tokenizer
    done = subprocess.run([sys.executable, "-m", "exporters.gguf.vocab", str(model_dir)], capture_output=True,
                          timeout=1800)
    if done.returncode != 0:
        err = done.stderr.decode("utf-8", errors="replace").strip().splitlines()
        if done.returncode == 2 and err:
            raise EdgetuneError(err[-1])
        raise RuntimeError("reading the tokenizer failed:\n" + "\n".join(err[-20:]))
    facts = pickle.loads(done.stdout)
    return build_vocab(files, facts), facts.turns


def _hide_torch() -> None:
    """Make transformers import without torch (find_spec sees None in sys.modules): tokenizers only."""
    for name in ("torch", "torchvision", "torchaudio"):
        sys.modules.setdefault(name, None)


def _child_main(argv: list) -> int:
    import os
    import pickle

    _hide_torch()
    # Run as __main__, this file's classes would pickle as '__main__.GgufVocab'; use the package's.
    from exporters.gguf import vocab as module

    try:
        result = module.tokenizer_facts(module.load_hf_tokenizer(Path(argv[0])))
    except EdgetuneError as e:
        print(str(e).replace("\n", " "), file=sys.stderr)
        return 2
    os.write(1, pickle.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(_child_main(sys.argv[1:]))
