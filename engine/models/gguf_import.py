"""Turn a GGUF file into a cached Hugging Face folder (de-quantised safetensors).

transformers can read a GGUF (`from_pretrained(dir, gguf_file=...)`) and
de-quantises every tensor on load. A model loaded that way refuses
`save_pretrained`, so we rebuild a plain model from its config, copy the state
dict across and save that. The folder is written under a temporary name and
renamed when complete, so an interrupted import never leaves a half folder that
a later run would trust.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Optional

from engine.errors import ModelSourceError
from engine.paths import cache_dir

MARKER = "edgetune-import.json"
# Bumped whenever the import writes something different, so caches of older imports are redone.
IMPORT_VERSION = 2  # 2: byte-level BPE tokenizers get their own split rules and a plain decoder


def _fingerprint(path: Path) -> str:
    """The cache key of a GGUF: its size and first/last MiB (not its path or mtime, so a copy, a
    reinstall or a desktop bundle of the same file reuses the import), plus IMPORT_VERSION."""
    size = path.stat().st_size
    h = hashlib.sha1(f"{size}:v{IMPORT_VERSION}".encode())
    with open(path, "rb") as fh:
        h.update(fh.read(1 << 20))
        fh.seek(max(size - (1 << 20), 0))
        h.update(fh.read(1 << 20))
    return h.hexdigest()[:10]


def materialise_gguf(gguf: Path, cache_name: Optional[str] = None) -> Path:
    """Return the HF folder for `gguf`, de-quantising it into the cache the first time."""
    gguf = Path(gguf)
    name = cache_name or gguf.stem
    target = cache_dir() / "models" / f"{name}-{_fingerprint(gguf)}"
    if (target / MARKER).is_file():
        return target
    from engine.formats.gguf_integrity import DamagedGguf, check_gguf

    try:
        check_gguf(gguf)  # a cut-short file: say so, instead of a numpy reshape error from deep inside transformers
    except DamagedGguf as e:
        raise ModelSourceError(str(e)) from None
    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        _convert(gguf, tmp)
        (tmp / MARKER).write_text(json.dumps({"source": str(gguf.resolve())}), encoding="utf-8")
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if e.errno == 28:
            raise ModelSourceError(
                f"No disk space left while de-quantising '{gguf}' into {target.parent}. Free some space "
                f"or point EDGETUNE_HOME at a bigger disk."
            ) from None
        raise
    except Exception as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ModelSourceError(
            f"Could not read '{gguf}' as a GGUF model ({type(e).__name__}: {e}). "
            f"Is it a complete GGUF file of a supported architecture (llama, qwen2, qwen3, gemma, phi3, ...)?"
        ) from None
    return target


def _convert(gguf: Path, out: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    config = loaded.config
    # The loaded config remembers it came from GGUF; the saved folder is plain safetensors.
    for attr in ("quantization_config", "_pre_quantization_dtype"):
        if hasattr(config, attr):
            delattr(config, attr)
    n_params = sum(p.numel() for p in loaded.parameters())
    # Tiny models keep fp32 (their de-quantised values are not all bf16-exact);
    # big ones are stored in bf16 so an 8B import does not need 32 GB of disk.
    dtype = torch.float32 if n_params < 1e9 else torch.bfloat16
    with torch.device("meta"):
        plain = AutoModelForCausalLM.from_config(config, dtype=dtype)
    plain.load_state_dict({k: v.to(dtype) for k, v in loaded.state_dict().items()}, assign=True, strict=False)
    if getattr(config, "tie_word_embeddings", False):
        plain.tie_weights()
    _fix_special_tokens(gguf, tok, plain)
    plain.save_pretrained(str(out), safe_serialization=True)
    tok.save_pretrained(str(out))
    del loaded, plain
    _fix_byte_level_tokenizer(gguf, out)


def _fix_byte_level_tokenizer(gguf: Path, out: Path) -> None:
    """Give a byte-level BPE tokenizer the split rules the GGUF names and a plain ByteLevel decoder.

    transformers rebuilds every GGUF BPE tokenizer with GPT-2's split rules and a SentencePiece-style
    decoder; SmolLM2 (`tokenizer.ggml.pre = smollm`) splits digits one by one, so without this the
    imported tokenizer would cut "1314" into pieces the model never saw in training.
    """
    from gguf import GGUFReader

    from engine.models.byte_level_bpe import make_plain_file

    field = GGUFReader(str(gguf)).fields.get("tokenizer.ggml.pre")
    pre = field.contents() if field is not None else None
    make_plain_file(out, pre)


def _fix_special_tokens(gguf: Path, tok, model) -> None:
    """Take bos/eos/pad/unk from the GGUF's own metadata.

    transformers' GGUF tokenizer import can get them wrong (SmolLM2 comes back with
    eos = <|im_start|>), which would teach a model that never stops. The GGUF's
    `tokenizer.ggml.*_token_id` fields are what llama.cpp uses, so they win.
    """
    from gguf import GGUFReader

    fields = GGUFReader(str(gguf)).fields
    ids = {}
    for role in ("bos", "eos", "padding", "unknown"):
        f = fields.get(f"tokenizer.ggml.{role}_token_id")
        if f is not None:
            ids[role] = int(f.parts[f.data[0]][0])
    names = {"bos": "bos_token", "eos": "eos_token", "padding": "pad_token", "unknown": "unk_token"}
    for role, tid in ids.items():
        setattr(tok, names[role], tok.convert_ids_to_tokens(tid))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.clean_up_tokenization_spaces = False  # destructive for BPE vocabularies
    for cfg in (model.config, model.generation_config):
        cfg.bos_token_id = tok.bos_token_id
        cfg.eos_token_id = tok.eos_token_id
        cfg.pad_token_id = tok.pad_token_id
