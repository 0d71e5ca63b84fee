"""Make a byte-level BPE tokenizer.json readable by onnxruntime-extensions.

onnxruntime-genai tokenizes with onnxruntime-extensions, which picks its BPE flavour from
tokenizer.json's decoder: a decoder that contains `ByteFallback` or `Replace('▁' -> ' ')`
marks a SentencePiece-style (Llama-2) vocabulary. Tokenizers that transformers rebuilds
from a GGUF file carry exactly that decoder on top of a GPT-2 byte-level vocabulary
(SmolLM2, Qwen, Llama-3), so onnxruntime-extensions encodes every space as id -1 and
decodes 'Ġ' literally. The decoder of a byte-level BPE is just `ByteLevel`, and a byte-level
vocabulary holds all 256 bytes so `byte_fallback` never fires: rewriting both changes
nothing for transformers and makes the ONNX tokenizer agree with it (verify.py checks that).
"""

from __future__ import annotations

import json
from pathlib import Path

BYTE_LEVEL_DECODER = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
SPM_DECODERS = {"ByteFallback", "Fuse", "Replace", "Strip"}


def _types(node) -> list[str]:
    """Component types of a (possibly Sequence) pre-tokenizer/decoder node."""
    if not node:
        return []
    if node.get("type") == "Sequence":
        parts = node.get("pretokenizers") or node.get("decoders") or []
        return [t for p in parts for t in _types(p)]
    return [node.get("type", "")]


def fix_tokenizer_json(folder: Path) -> list[str]:
    """Rewrite folder/tokenizer.json in place when it needs it; returns what was changed."""
    path = Path(folder) / "tokenizer.json"
    if not path.is_file():
        return []
    data = json.loads(path.read_text(encoding="utf-8"))
    model = data.get("model") or {}
    if model.get("type") != "BPE" or "ByteLevel" not in _types(data.get("pre_tokenizer")):
        return []  # SentencePiece/Unigram/WordPiece vocabularies are read correctly as they are
    changes = []
    decoder_types = _types(data.get("decoder"))
    if decoder_types != ["ByteLevel"] and SPM_DECODERS & set(decoder_types):
        data["decoder"] = dict(BYTE_LEVEL_DECODER)
        changes.append(f"decoder {'+'.join(decoder_types)} -> ByteLevel")
    if model.get("byte_fallback"):
        model["byte_fallback"] = False
        changes.append("byte_fallback true -> false")
    if changes:
        path.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    return changes
