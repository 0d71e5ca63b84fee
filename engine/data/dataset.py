"""From a data file to tokenised training records, with an honest report.

    loaded = load_examples("data.jsonl")                  # detect format, convert
    built = tokenise(loaded.examples, tokenizer, 1024)   # template, mask, truncate

`LoadReport` and `TokenReport` keep the counts a user needs to trust the data:
records read, skipped (with their file:line), truncated and dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from engine.data.formats import FORMATS, Example, RecordError, detect_format
from engine.data.readers import BadRecord, read_records
from engine.data.render import Encoded, Renderer
from engine.errors import DataError


@dataclass
class LoadReport:
    path: str
    format: str
    examples: list = field(default_factory=list)
    locations: list = field(default_factory=list)
    skipped: list = field(default_factory=list)  # (location, reason)

    @property
    def kind(self) -> str:
        return self.examples[0].kind if self.examples else "chat"


@dataclass
class TokenReport:
    records: list = field(default_factory=list)  # Encoded
    truncated: int = 0  # chat records cut to max_len
    dropped: int = 0  # nothing left to learn after masking/truncation
    split: int = 0  # raw-text records longer than max_len, cut into several windows


def load_examples(path: str, format: str = "auto", columns: Optional[dict] = None,
                  system_prompt: Optional[str] = None, on_error: str = "abort") -> LoadReport:
    """Read and convert every record; a bad record aborts with its file:line or is skipped and counted."""
    columns = columns or {}
    report = LoadReport(str(path), format)
    fmt = FORMATS.get(format) if format != "auto" else None
    if format != "auto" and fmt is None:
        raise DataError(f"data.format={format!r} is unknown; allowed values: auto, {', '.join(FORMATS)}.")
    for location, rec in read_records(path):
        try:
            if isinstance(rec, BadRecord):
                raise RecordError(rec.message)
            if not isinstance(rec, dict):
                raise RecordError(f"expected an object with fields, got {type(rec).__name__}")
            if fmt is None:
                name = detect_format(rec, columns)
                if name is None:
                    raise RecordError(
                        f"cannot tell the format of this record (fields: {sorted(rec)}). "
                        f"Expected alpaca (instruction/output), sharegpt (conversations), messages, text or "
                        f"preference (prompt/chosen/rejected) or KTO (prompt/completion/label) fields; map yours with data.columns, e.g. "
                        f"data.columns='{{instruction: question, output: answer}}'"
                    )
                fmt = FORMATS[name]
                report.format = name
            if not fmt.detect(rec, columns) and fmt.name != "messages":
                missing = [fmt.col(columns, k) for k in fmt.required if fmt.col(columns, k) not in rec]
                raise RecordError(f"missing field(s) {missing} of format '{fmt.name}'")
            ex = fmt.convert(rec, columns, system_prompt)
        except RecordError as e:
            if on_error == "skip":
                report.skipped.append((location, str(e)))
                continue
            raise DataError(f"{location}: {e}. Fix the record, or set data.on_error=skip to drop bad records.") from None
        report.examples.append(ex)
        report.locations.append(location)
    if not report.examples:
        why = f" ({len(report.skipped)} malformed record(s) skipped, first: {report.skipped[0][0]}: {report.skipped[0][1]})" if report.skipped else ""
        raise DataError(f"Data file '{path}' holds no usable records{why}. Add records or check data.format/data.columns.")
    return report


def tokenise(examples: list[Example], tokenizer, max_len: int, loss_on: str = "assistant") -> TokenReport:
    """Render, mask and truncate every example for this tokenizer (loss_on: see data.loss_on)."""
    renderer = Renderer(tokenizer, max_len, loss_on)
    out = TokenReport()
    for ex in examples:
        encoded: list[Encoded]
        if ex.kind == "text":
            encoded = renderer.encode_text(ex.text)
        else:
            one = renderer.encode(ex)
            encoded = [one] if one is not None else []
        if not encoded:
            out.dropped += 1
            continue
        out.truncated += int(any(e.truncated for e in encoded))
        out.split += int(len(encoded) > 1)
        out.records.extend(encoded)
    return out


def split_eval(items: list, fraction: float, seed: int) -> tuple[list, list]:
    """Deterministic train/eval split; at least one eval item when fraction > 0."""
    import random

    if fraction <= 0 or len(items) < 2:
        return items, []
    idx = list(range(len(items)))
    random.Random(seed).shuffle(idx)
    n_eval = max(1, int(round(len(items) * fraction)))
    eval_idx = set(idx[:n_eval])
    return [x for i, x in enumerate(items) if i not in eval_idx], [x for i, x in enumerate(items) if i in eval_idx]
