"""Tokenised training and eval datasets for a run, plus a fingerprint for resume checks."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from engine.data.dataset import load_examples, split_eval, tokenise
from engine.errors import DataError


@dataclass
class RunData:
    train: object  # datasets.Dataset with input_ids, labels
    eval: object | None
    kind: str
    truncated: int
    dropped: int
    skipped: int
    trained_tokens: int  # tokens that carry loss in one epoch


def file_fingerprint(path: str) -> str:
    """sha256 of a data file (or of a saved-dataset folder's files), to refuse resumes on changed data."""
    p = Path(path)
    h = hashlib.sha256()
    files = sorted(x for x in p.rglob("*") if x.is_file()) if p.is_dir() else [p]
    for f in files:
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()[:16]


def _to_dataset(records):
    from datasets import Dataset

    return Dataset.from_dict({"input_ids": [r.input_ids for r in records], "labels": [r.labels for r in records]})


def build_run_data(cfg, tokenizer) -> RunData:
    """Load, split, render and tokenise the run's data."""
    d = cfg.data
    if not d.path:
        raise DataError("No training data: set data=<file> (e.g. data=assets/datasets/quillon_facts.jsonl).")
    loaded = load_examples(d.path, d.format, d.columns, d.system_prompt, d.on_error)
    if loaded.kind == "preference":
        raise DataError(f"{d.path} holds preference pairs (prompt/chosen/rejected); SFT needs instructions, chats or text. Use the chosen answers as alpaca records, or a DPO recipe.")
    train_ex, eval_ex = split_eval(loaded.examples, 0.0 if d.eval_path else d.eval_split, cfg.seed)
    if d.eval_path:
        eval_ex = load_examples(d.eval_path, d.format, d.columns, d.system_prompt, d.on_error).examples
    train_tok = tokenise(train_ex, tokenizer, cfg.sequence.max_len, d.loss_on)
    if not train_tok.records:
        raise DataError(f"{d.path}: every record was dropped after masking/truncation; raise sequence.max_len (now {cfg.sequence.max_len}).")
    eval_tok = tokenise(eval_ex, tokenizer, cfg.sequence.max_len, d.loss_on) if eval_ex else None
    if eval_tok is not None and not eval_tok.records:
        where = d.eval_path or f"the data.eval_split={d.eval_split} held-out part of {d.path}"
        raise DataError(f"Every eval record of {where} was dropped after masking/truncation (no answer left within "
                        f"sequence.max_len={cfg.sequence.max_len}); raise sequence.max_len or use other eval records.")
    trained = sum(sum(1 for l in r.labels if l != -100) for r in train_tok.records)
    return RunData(
        train=_to_dataset(train_tok.records),
        eval=_to_dataset(eval_tok.records) if eval_tok and eval_tok.records else None,
        kind=loaded.kind, truncated=train_tok.truncated, dropped=train_tok.dropped,
        skipped=len(loaded.skipped), trained_tokens=trained,
    )
