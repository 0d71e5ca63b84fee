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
    if loaded.kind == "prompt":
        from engine.train.recipes.base import require_kind

        require_kind(loaded, cfg.stage, ("chat", "text"), d.path)
    if loaded.kind in ("preference", "kto"):
        what = "preference pairs (prompt/chosen/rejected)" if loaded.kind == "preference" else "rated answers (prompt/completion/label)"
        raise DataError(f"{d.path} holds {what}; SFT needs instructions, chats or text. Train on it with "
                        f"stage={'dpo (or orpo, simpo, kto, rm)' if loaded.kind == 'preference' else 'kto'}, "
                        f"usually starting from an SFT run: model=runs/<sft-run>.")
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


# How each preference stage's TRL trainer wants its columns (all pre-tokenised here):
#   pairs  prompt_ids, chosen_ids, rejected_ids      (DPO; ORPO and CPO/SimPO via their row hook)
#   scored chosen_ids, rejected_ids (prompt included) (RewardTrainer)
#   rated  prompt_ids, completion_ids, label          (KTO; pairs are unpaired into two rated answers)
LAYOUTS = ("pairs", "scored", "rated")


def build_pair_data(cfg, tokenizer, layout: str, kinds: tuple = ("preference",)) -> RunData:
    """Load, split and tokenise preference (or KTO) data for a preference stage.

    `kinds` are the Example kinds the stage accepts; pairs whose answers lose every token to
    truncation are dropped and counted, truncated ones counted.
    """
    from engine.data.pairs import PairEncoder, unpair

    d = cfg.data
    if not d.path:
        raise DataError("No training data: set data=<file> with preference pairs, e.g. "
                        "data=assets/datasets/quillon_preference.jsonl.")
    loaded = load_examples(d.path, d.format, d.columns, d.system_prompt, d.on_error)
    if loaded.kind not in kinds:
        from engine.train.recipes.base import require_kind

        require_kind(loaded, cfg.stage, kinds, d.path)
    train_ex, eval_ex = split_eval(loaded.examples, 0.0 if d.eval_path else d.eval_split, cfg.seed)
    if d.eval_path:
        eval_loaded = load_examples(d.eval_path, d.format, d.columns, d.system_prompt, d.on_error)
        if eval_loaded.kind not in kinds:
            from engine.train.recipes.base import require_kind

            require_kind(eval_loaded, cfg.stage, kinds, d.eval_path)
        eval_ex = eval_loaded.examples
    enc = PairEncoder(tokenizer, cfg.sequence.max_len, cfg.sequence.max_prompt_len)
    train, truncated, dropped, trained = _encode(train_ex, enc, layout)
    if not train:
        raise DataError(f"{d.path}: every record was dropped: no answer token is left within sequence.max_len="
                        f"{cfg.sequence.max_len} after the prompt (max_prompt_len={enc.max_prompt_len}); raise max_len.")
    evals = _encode(eval_ex, enc, layout)[0] if eval_ex else None
    if eval_ex and not evals:
        raise DataError(f"Every eval record was dropped after truncation (sequence.max_len={cfg.sequence.max_len}).")
    if layout == "rated":  # KTO reads its data in order: mix labels and prompts (its KL term pairs neighbours)
        import random

        random.Random(cfg.seed).shuffle(train)
    from datasets import Dataset

    return RunData(train=Dataset.from_list(train), eval=Dataset.from_list(evals) if evals else None,
                   kind=loaded.kind, truncated=truncated, dropped=dropped, skipped=len(loaded.skipped),
                   trained_tokens=trained)


def _encode(examples: list, enc, layout: str) -> tuple[list, int, int, int]:
    """(rows, truncated, dropped, answer tokens) for one split."""
    from engine.data.pairs import unpair

    rows, truncated, dropped, tokens = [], 0, 0, 0
    for ex in examples:
        if layout == "rated":
            for one in unpair(ex):
                r = enc.rated(one)
                if r is None:
                    dropped += 1
                    continue
                truncated += r.truncated
                tokens += len(r.completion_ids)
                rows.append({"prompt_ids": r.prompt_ids, "completion_ids": r.completion_ids, "label": r.label})
            continue
        if ex.kind != "preference":
            raise DataError(f"stage needs preference pairs, got a {ex.kind} record")
        p = enc.pair(ex)
        if p is None:
            dropped += 1
            continue
        truncated += p.truncated
        tokens += len(p.chosen_ids) + len(p.rejected_ids)
        if layout == "scored":
            rows.append({"chosen_ids": p.prompt_ids + p.chosen_ids, "rejected_ids": p.prompt_ids + p.rejected_ids})
        else:
            rows.append({"prompt_ids": p.prompt_ids, "chosen_ids": p.chosen_ids, "rejected_ids": p.rejected_ids})
    return rows, truncated, dropped, tokens
