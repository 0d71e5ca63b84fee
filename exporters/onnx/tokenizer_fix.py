"""Make a byte-level BPE tokenizer.json readable by onnxruntime-extensions.

onnxruntime-genai tokenizes with onnxruntime-extensions, which picks its BPE flavour from
tokenizer.json's decoder: a decoder that contains `ByteFallback` or `Replace('▁' -> ' ')`
marks a SentencePiece-style (Llama-2) vocabulary, so it would encode every space as id -1 and
decode 'Ġ' literally. engine.models.byte_level_bpe rewrites such a decoder to plain ByteLevel
(folders imported from a GGUF already are; folders from elsewhere may not be); verify.py checks
the ONNX tokenizer then agrees with transformers.
"""

from __future__ import annotations

from pathlib import Path

from engine.models.byte_level_bpe import make_plain_file


def fix_tokenizer_json(folder: Path) -> list[str]:
    """Rewrite folder/tokenizer.json in place when it needs it; returns what was changed."""
    return make_plain_file(folder)
