"""Which llama.cpp pre-tokenizer (`tokenizer.ggml.pre`) a byte-level BPE tokenizer needs.

Before BPE merges run, text is split into chunks by a regex; llama.cpp has the
regexes of known families built in and picks one by name. A wrong name gives
different token ids for digits, contractions or whitespace runs: the model still
loads and then quietly answers worse. llama.cpp's own converter recognises a
tokenizer by hashing its ids on a test string, so any vocabulary it has not seen
fails. We read the splitting rules themselves from tokenizer.json instead: they
are what decides the ids, whatever the vocabulary.

Registry: engine.models.byte_level_bpe.PRE_TOKENIZERS (shared with the GGUF import, which
puts a model's own split rules back into its tokenizer.json); here each entry is compared by
its normalised steps (digits-first, regex, byte-level flag).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from engine.errors import EdgetuneError
from engine.models.byte_level_bpe import LLAMA3_REGEX, PRE_TOKENIZERS as _NODES, QWEN2_REGEX  # noqa: F401


@dataclass(frozen=True)
class PreTokenizer:
    """A llama.cpp pre-tokenizer and the tokenizer.json steps it reproduces."""

    name: str          # value of tokenizer.ggml.pre
    steps: tuple       # normalised pre_tokenizer steps, see `signature`
    note: str


def _steps(node: Optional[dict]) -> list[dict]:
    if not node:
        return []
    if node.get("type") == "Sequence":
        out = []
        for child in node.get("pretokenizers", []):
            out += _steps(child)
        return out
    return [node]


def signature(tokenizer_json: dict) -> tuple:
    """The pre_tokenizer of a tokenizer.json as comparable steps, e.g. (('digits', True), ('bytelevel', True))."""
    sig = []
    for step in _steps(tokenizer_json.get("pre_tokenizer")):
        kind = step.get("type")
        if kind == "ByteLevel":
            sig.append(("bytelevel", bool(step.get("use_regex", True))))
        elif kind == "Digits":
            sig.append(("digits", bool(step.get("individual_digits", False))))
        elif kind == "Split":
            pattern = step.get("pattern", {})
            sig.append(("split", pattern.get("Regex", pattern.get("String"))))
        else:
            sig.append((kind.lower() if kind else "?", None))
    return tuple(sig)


def known_pre_tokenizers() -> list[PreTokenizer]:
    return [PreTokenizer(name, signature({"pre_tokenizer": node}), note) for name, (node, note) in _NODES.items()]


def detect_pre_tokenizer(tokenizer_json: dict, source: str) -> str:
    """The llama.cpp pre-tokenizer name for a byte-level BPE tokenizer.json, or a clear error."""
    normalizer = tokenizer_json.get("normalizer")
    # NFC (Qwen's tokenizers) changes nothing in text that is already composed, which is nearly all
    # text; llama.cpp skips it. Anything else (lower-casing, accent stripping) changes ids.
    harmless = normalizer is None or normalizer.get("type") == "NFC" or \
        (normalizer.get("type") == "Sequence" and not normalizer.get("normalizers"))
    if not harmless:
        raise EdgetuneError(
            f"The tokenizer in {source} normalises text ({normalizer.get('type')}) before a byte-level BPE; "
            f"llama.cpp cannot reproduce that. Pass --pre-tokenizer NAME only if you know the right llama.cpp name."
        )
    sig = signature(tokenizer_json)
    for pre in known_pre_tokenizers():
        if pre.steps == sig:
            return pre.name
    known = "; ".join(f"{p.name} ({p.note})" for p in known_pre_tokenizers())
    raise EdgetuneError(
        f"The byte-level BPE tokenizer in {source} splits text with rules llama.cpp's known pre-tokenizers "
        f"do not match: {sig}. Known: {known}. If you know the right llama.cpp name, pass --pre-tokenizer NAME; "
        f"verification will then check the token ids."
    )
