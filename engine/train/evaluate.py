"""`engine eval`: loss and perplexity on a dataset, base and tuned side by side.

Loss is the mean over answer tokens only (the same masking as training), so the
numbers are comparable with the run's eval events.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from engine.data.dataset import load_examples, tokenise


@dataclass
class EvalResult:
    name: str
    loss: float
    perplexity: float
    tokens: int


def masked_loss(model, records, batch_size: int = 8) -> tuple[float, int]:
    """Mean next-token loss over labelled positions, and how many positions counted."""
    import torch

    total, count = 0.0, 0
    model.eval()
    for i in range(0, len(records), batch_size):
        chunk = records[i : i + batch_size]
        width = max(len(r.input_ids) for r in chunk)
        ids = torch.zeros(len(chunk), width, dtype=torch.long)
        labels = torch.full((len(chunk), width), -100, dtype=torch.long)
        mask = torch.zeros(len(chunk), width, dtype=torch.long)
        for j, r in enumerate(chunk):
            ids[j, : len(r.input_ids)] = torch.tensor(r.input_ids)
            labels[j, : len(r.labels)] = torch.tensor(r.labels)
            mask[j, : len(r.input_ids)] = 1
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=mask).logits.float()
        shift_logits, shift_labels = logits[:, :-1], labels[:, 1:]
        loss = torch.nn.functional.cross_entropy(shift_logits.reshape(-1, shift_logits.shape[-1]),
                                                 shift_labels.reshape(-1), ignore_index=-100, reduction="sum")
        total += loss.item()
        count += int((shift_labels != -100).sum())
    return total / max(count, 1), count


def evaluate(spec: str, data: str, max_len: int = 1024, compare_base: bool = True) -> list[EvalResult]:
    """Evaluate a run folder (tuned vs its base) or a plain model on `data`."""
    import torch
    from transformers import AutoModelForCausalLM

    from engine.config import load_config
    from engine.models import resolve_model
    from engine.models.loading import tokenizer_from_dir
    from engine.runs import is_run_dir

    run = Path(spec) if is_run_dir(spec) else None
    if run is not None:
        cfg = load_config(run / "config.yaml")
        base_dir = resolve_model(cfg.model.name_or_path, cfg.model.revision, trust_remote_code=cfg.model.trust_remote_code).path
        tok_dir = run / "adapter" if (run / "adapter").is_dir() else base_dir
        max_len = cfg.sequence.max_len
    else:
        base_dir = tok_dir = resolve_model(spec).path
    tokenizer = tokenizer_from_dir(tok_dir)
    records = tokenise(load_examples(data).examples, tokenizer, max_len).records
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32)
    results = []
    if run is None or compare_base:
        loss, n = masked_loss(model, records)
        results.append(EvalResult("base" if run is not None else str(spec), loss, math.exp(min(loss, 50)), n))
    if run is not None:
        from engine.train.methods.saved import is_adapter_dir, load_adapter

        if is_adapter_dir(run / "adapter"):
            model = load_adapter(model, run / "adapter")
        else:
            model = AutoModelForCausalLM.from_pretrained(str(run / "final"), dtype=torch.float32)
        loss, n = masked_loss(model, records)
        results.append(EvalResult("tuned", loss, math.exp(min(loss, 50)), n))
    return results


@dataclass
class QuizItem:
    question: str
    expect: str
    answers: dict  # model label -> answer text
    correct: dict  # model label -> bool


def quiz(spec: str, data: str, max_tokens: int = 48, with_base: bool = True) -> list[QuizItem]:
    """Greedy answers of base and tuned to each question, each checked by what its record asks for.

    Records are alpaca-style (`instruction`) or preference/prompt-style (`prompt`). A record is checked
    by its `expect` field (the key fact, e.g. "41", must appear; alpaca records fall back to the whole
    `output`) or by `max_words` (the reply must be at most that many words: a style target such as
    brevity). Records with neither are answered but not scored (correct is None).
    """
    from engine.chat import ChatSession
    from engine.config import load_config
    from engine.data.readers import read_records
    from engine.runs import is_run_dir

    sessions = {}
    if is_run_dir(spec) and with_base:
        cfg = load_config(Path(spec) / "config.yaml")
        sessions["base"] = ChatSession(cfg.model.name_or_path, temperature=0, max_tokens=max_tokens, repeat_penalty=1.0)
    sessions["tuned" if sessions or is_run_dir(spec) else str(spec)] = ChatSession(spec, temperature=0, max_tokens=max_tokens, repeat_penalty=1.0)
    items = []
    for _, rec in read_records(data):
        q = rec.get("instruction") or rec.get("prompt") or rec.get("question")
        if isinstance(q, list):  # a conversational prompt: its last user turn
            q = next((m.get("content") for m in reversed(q) if m.get("role") == "user"), "")
        expect = rec.get("expect") or ("" if "chosen" in rec else rec.get("output")) or ""
        max_words = rec.get("max_words")
        answers, correct = {}, {}
        for name, s in sessions.items():
            s.reset()
            answers[name] = s.ask(q)
            correct[name] = _check(answers[name], expect, max_words)
        items.append(QuizItem(q, expect or (f"<= {max_words} words" if max_words else ""), answers, correct))
    return items


def _check(answer: str, expect: str, max_words) -> bool | None:
    if expect:
        return expect.lower() in answer.lower()
    if max_words:
        return len(answer.split()) <= int(max_words)
    return None
