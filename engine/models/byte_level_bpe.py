"""Facts about byte-level BPE tokenizer.json files (GPT-2, SmolLM, Llama 3, Qwen2 families).

Before BPE merges run, text is split into chunks; the split rules decide the token ids of
digits, contractions and whitespace runs. llama.cpp names each family's rules
(`tokenizer.ggml.pre`); tokenizer.json spells them out as `pre_tokenizer` steps. This registry
holds both spellings, so a GGUF imported for training gets the split rules its model was trained
with, and a folder exported to GGUF gets the llama.cpp name its rules mean
(exporters/gguf/pretokenizer.py).

The decoder of a byte-level BPE is just `ByteLevel`, and its vocabulary holds all 256 bytes so
`byte_fallback` never fires. Tokenizers that transformers rebuilds from a GGUF carry a
SentencePiece-style decoder (ByteFallback, Fuse, Replace '▁') on top, which other runtimes
(onnxruntime-extensions, llama.cpp's converter) read as a SentencePiece vocabulary:
`make_plain` rewrites both without changing a single id for transformers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

LLAMA3_REGEX = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN2_REGEX = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"

BYTE_LEVEL_DECODER = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
SPM_DECODERS = {"ByteFallback", "Fuse", "Replace", "Strip"}


def _byte_level(use_regex: bool) -> dict:
    return {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": use_regex}


def _split(regex: str) -> dict:
    return {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": False}


# llama.cpp name -> (tokenizer.json pre_tokenizer, what it means). First match wins on export.
PRE_TOKENIZERS: dict[str, tuple[dict, str]] = {}


def register_pre_tokenizer(name: str, node: dict, note: str) -> None:
    PRE_TOKENIZERS[name] = (node, note)


register_pre_tokenizer("llama-bpe", {"type": "Sequence", "pretokenizers": [_split(LLAMA3_REGEX), _byte_level(False)]},
                       "Llama 3.x: digits in groups of three")
register_pre_tokenizer("qwen2", {"type": "Sequence", "pretokenizers": [_split(QWEN2_REGEX), _byte_level(False)]},
                       "Qwen2/2.5/3: one digit per chunk")
register_pre_tokenizer("smollm", {"type": "Sequence", "pretokenizers": [
    {"type": "Digits", "individual_digits": True}, _byte_level(True)]}, "SmolLM/SmolLM2: single digits, then GPT-2 rules")
register_pre_tokenizer("gpt-2", _byte_level(True), "GPT-2 rules")


def component_types(node: Optional[dict]) -> list[str]:
    """Component types of a (possibly Sequence) pre-tokenizer/decoder node."""
    if not node:
        return []
    if node.get("type") == "Sequence":
        parts = node.get("pretokenizers") or node.get("decoders") or []
        return [t for p in parts for t in component_types(p)]
    return [node.get("type", "")]


def is_byte_level_bpe(data: dict) -> bool:
    return (data.get("model") or {}).get("type") == "BPE" and "ByteLevel" in component_types(data.get("pre_tokenizer"))


def make_plain(data: dict, pre: Optional[str] = None) -> list[str]:
    """Rewrite a byte-level BPE tokenizer.json dict in place; returns what changed.

    `pre`: the llama.cpp pre-tokenizer name the model was trained with (a GGUF's
    `tokenizer.ggml.pre`); its split rules replace the ones in `data` when they differ.
    """
    if not is_byte_level_bpe(data):
        return []  # SentencePiece/Unigram/WordPiece vocabularies are read correctly as they are
    changes = []
    decoder_types = component_types(data.get("decoder"))
    if decoder_types != ["ByteLevel"] and SPM_DECODERS & set(decoder_types):
        data["decoder"] = dict(BYTE_LEVEL_DECODER)
        changes.append(f"decoder {'+'.join(decoder_types)} -> ByteLevel")
    model = data["model"]
    if model.get("byte_fallback"):
        model["byte_fallback"] = False
        changes.append("byte_fallback true -> false")
    if pre in PRE_TOKENIZERS and data.get("pre_tokenizer") != PRE_TOKENIZERS[pre][0]:
        data["pre_tokenizer"] = json.loads(json.dumps(PRE_TOKENIZERS[pre][0]))
        changes.append(f"pre_tokenizer -> {pre} ({PRE_TOKENIZERS[pre][1]})")
    return changes


def make_plain_file(folder: Path, pre: Optional[str] = None) -> list[str]:
    """`make_plain` on folder/tokenizer.json, rewritten in place (atomically) when something changed."""
    path = Path(folder) / "tokenizer.json"
    if not path.is_file():
        return []
    data = json.loads(path.read_text(encoding="utf-8"))
    changes = make_plain(data, pre)
    if changes:
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
        tmp.replace(path)
    return changes
