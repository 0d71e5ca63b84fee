"""`engine data inspect`: what the trainer will see, before spending GPU time.

Reports the detected format, record counts, token-length statistics, how many
records exceed max_len, and one rendered sample with the trained (unmasked)
parts marked, so a wrong template or a missing EOS shows up at a glance.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field

from engine.data.dataset import load_examples, tokenise
from engine.data.render import IGNORE, max_len_problem
from engine.errors import DataError


@dataclass
class InspectReport:
    path: str
    format: str
    kind: str
    records: int
    skipped: list
    lengths: list
    over_max_len: int
    truncated: int
    dropped: int
    max_len: int
    split: int = 0  # raw-text records cut into several windows
    sample_index: int = 0
    sample_segments: list = field(default_factory=list)  # (trained: bool, text)
    trained_tokens: int = 0
    total_tokens: int = 0
    stages: list = field(default_factory=list)  # training stages that can use this kind of data (set by the caller)
    pair: dict | None = None  # preference/KTO: the sample's prompt and answers, trained parts [[marked]]

    def stats(self) -> dict:
        xs = sorted(self.lengths)
        if not xs:
            return {}
        p95 = xs[min(len(xs) - 1, int(round(0.95 * (len(xs) - 1))))]
        return {"min": xs[0], "median": statistics.median(xs), "p95": p95, "max": xs[-1]}

    def to_dict(self) -> dict:
        return {
            "path": self.path, "format": self.format, "kind": self.kind, "records": self.records,
            "skipped": len(self.skipped), "token_lengths": self.stats(), "over_max_len": self.over_max_len,
            "truncated": self.truncated, "dropped": self.dropped, "split": self.split, "max_len": self.max_len,
            "sample_index": self.sample_index,
            "trained_token_fraction": round(self.trained_tokens / max(1, self.total_tokens), 4),
            "sample": "".join(t if not trained else f"[[{t}]]" for trained, t in self.sample_segments),
            "stages": list(self.stages), **({"pair": self.pair} if self.pair is not None else {}),
        }


def segments(tokenizer, input_ids: list, labels: list) -> list[tuple[bool, str]]:
    """Split a sample into runs of trained / masked tokens, decoded."""
    runs: list[tuple[bool, list]] = []
    for tid, lab in zip(input_ids, labels):
        trained = lab != IGNORE
        if runs and runs[-1][0] == trained:
            runs[-1][1].append(tid)
        else:
            runs.append((trained, [tid]))
    return [(t, tokenizer.decode(ids, skip_special_tokens=False)) for t, ids in runs]


def inspect_data(path: str, tokenizer, max_len: int = 1024, format: str = "auto", columns=None,
                 system_prompt=None, on_error: str = "abort", sample_index: int = 0,
                 loss_on: str = "assistant") -> InspectReport:
    """Load, render and tokenise a data file and summarise it (nothing is written).

    The tokenizer is used as training will use it: with its chat template, or the one chosen by
    model.chat_template (ensure_chat_template). Raises DataError when nothing is left to train on.
    """
    problem = max_len_problem(max_len, "max_len")
    if problem:
        raise DataError(problem)
    loaded = load_examples(path, format, columns, system_prompt, on_error)
    if loaded.kind == "prompt":
        return _inspect_prompts(loaded, tokenizer, max_len, sample_index)
    # Lengths without truncation show how much max_len would cut.
    full = tokenise(loaded.examples, tokenizer, 10**9, loss_on)
    built = tokenise(loaded.examples, tokenizer, max_len, loss_on)
    if not built.records:
        raise DataError(f"{path}: all {len(loaded.examples)} record(s) were dropped at max_len={max_len}: no answer "
                        f"token is left to learn from. Raise max_len (the longest record has "
                        f"{max(len(r.input_ids) for r in full.records)} tokens).")
    lengths = [len(r.input_ids) for r in full.records]
    sample_index = max(0, min(sample_index, len(built.records) - 1))
    sample = built.records[sample_index]
    report = InspectReport(
        path=str(path), format=loaded.format, kind=loaded.kind, records=len(loaded.examples),
        skipped=loaded.skipped, lengths=lengths, over_max_len=sum(1 for n in lengths if n > max_len),
        truncated=built.truncated, dropped=built.dropped, max_len=max_len, split=built.split,
        sample_index=sample_index,
        trained_tokens=sum(sum(1 for l in r.labels if l != IGNORE) for r in built.records),
        total_tokens=sum(len(r.input_ids) for r in built.records),
    )
    report.sample_segments = segments(tokenizer, sample.input_ids, sample.labels)
    if loaded.kind in ("preference", "kto"):
        report.pair = render_pair(loaded.examples[min(sample_index, len(loaded.examples) - 1)], tokenizer, max_len)
    return report


def _inspect_prompts(loaded, tokenizer, max_len: int, sample_index: int) -> InspectReport:
    """Prompt-only records (online RL): prompt lengths as rendered for sampling; nothing carries loss yet."""
    from engine.data.prompts import prompt_ids

    ids = [prompt_ids(tokenizer, ex.messages) for ex in loaded.examples]
    lengths = [len(x) for x in ids]
    sample_index = max(0, min(sample_index, len(ids) - 1))
    extra = loaded.examples[sample_index].extra
    report = InspectReport(
        path=loaded.path, format=loaded.format, kind="prompt", records=len(ids), skipped=loaded.skipped,
        lengths=lengths, over_max_len=sum(1 for n in lengths if n > max_len), truncated=0, dropped=0,
        max_len=max_len, sample_index=sample_index, total_tokens=sum(lengths),
    )
    text = tokenizer.decode(ids[sample_index], skip_special_tokens=False)
    columns = "".join(f"\n[column {k}: {v!r}]" for k, v in extra.items())
    report.sample_segments = [(False, text + "<the policy samples its answer here>" + columns)]
    return report


def render_pair(example, tokenizer, max_len: int) -> dict:
    """A preference (or KTO) record as the trainer sees it: the prompt (masked) and each answer's trained
    tokens [[marked]] (the same ids engine/data/pairs.py gives the trainer)."""
    from engine.data.pairs import PairEncoder

    enc = PairEncoder(tokenizer, max_len)
    decode = lambda ids: tokenizer.decode(ids, skip_special_tokens=False)  # noqa: E731
    if example.kind == "kto":
        rated = enc.rated(example)
        prompt, answer = (rated.prompt_ids, rated.completion_ids) if rated else (enc.split(example.messages, example.completion)[0], [])
        side = "chosen" if example.label else "rejected"
        return {"prompt": decode(prompt), side: f"[[{decode(answer)}]]", "label": bool(example.label)}
    pair = enc.pair(example)
    if pair is None:
        return {"prompt": decode(enc.split(example.messages, example.chosen)[0]), "chosen": "", "rejected": ""}
    return {"prompt": decode(pair.prompt_ids), "chosen": f"[[{decode(pair.chosen_ids)}]]",
            "rejected": f"[[{decode(pair.rejected_ids)}]]"}


def _over_max_len(report: InspectReport) -> str:
    """What max_len does to this data: raw text is split into windows, chats are truncated or dropped."""
    if report.kind == "prompt":
        return (f"{report.over_max_len} prompt(s) longer; prompts are not cut, the RL stages sample each answer "
                f"(up to rl.max_completion_len tokens, the tokens that carry loss) after the whole prompt")
    if report.kind == "text":
        return f"{report.split} record(s) longer, split into windows of {report.max_len} tokens (every token trained)"
    kept = max(0, report.over_max_len - report.dropped)
    return (f"{report.over_max_len} record(s) longer: {kept} truncated keeping EOS, {report.dropped} dropped "
            f"(no answer token left)")


def format_report(report: InspectReport, color: bool = False) -> str:
    """Human-readable text for the terminal."""
    s = report.stats()
    lines = [
        f"file:        {report.path}",
        f"format:      {report.format} ({report.kind})",
        f"records:     {report.records}" + (f"  (skipped {len(report.skipped)} malformed)" if report.skipped else ""),
        f"tokens:      min {s.get('min')}  median {s.get('median')}  p95 {s.get('p95')}  max {s.get('max')}",
        f"max_len:     {report.max_len}  ->  {_over_max_len(report)}",
        f"trained:     {report.trained_tokens} of {report.total_tokens} tokens "
        f"({100 * report.trained_tokens / max(1, report.total_tokens):.1f}%) carry loss",
    ]
    if report.stages:
        lines.append(f"stages:      {', '.join(report.stages)} can train on this file (stage=...)")
    for loc, why in report.skipped[:5]:
        lines.append(f"  skipped {loc}: {why}")
    lines.append("")
    if report.pair is not None:
        lines += _pair_lines(report, color)
        return "\n".join(lines)
    legend = "trained tokens in green" if color else "trained tokens are [[marked]]; the rest is masked (label -100)"
    lines.append(f"sample {report.sample_index + 1} ({legend}):")
    body = []
    for trained, text in report.sample_segments:
        if not trained:
            body.append(f"\033[2m{text}\033[0m" if color else text)
        else:
            body.append(f"\033[32m{text}\033[0m" if color else f"[[{text}]]")
    lines.append("".join(body))
    return "\n".join(lines)


def _pair_lines(report: InspectReport, color: bool) -> list[str]:
    """The sample pair: the prompt (masked) full width, then chosen and rejected side by side."""
    import shutil
    import textwrap

    pair = report.pair
    legend = "trained tokens in green" if color else "trained tokens are [[marked]]; the prompt is masked"
    lines = [f"sample {report.sample_index + 1} as the trainer sees it ({legend}):", "prompt:",
             (f"\033[2m{pair['prompt']}\033[0m" if color else pair["prompt"]), ""]
    width = max(30, (shutil.get_terminal_size((120, 20)).columns - 3) // 2)
    sides = [k for k in ("chosen", "rejected") if k in pair]
    cols = []
    for k in sides:
        text = pair[k]
        if color:
            text = text.replace("[[", "").replace("]]", "")
        wrapped = []
        for para in text.splitlines() or [""]:
            wrapped += textwrap.wrap(para, width) or [""]
        title = k if "label" not in pair else f"{k} (label {str(pair['label']).lower()})"
        cols.append([title, "-" * min(width, len(title))] + wrapped)
    rows = max(len(c) for c in cols)
    for i in range(rows):
        cells = [(c[i] if i < len(c) else "") for c in cols]
        if color and i >= 2:
            cells = [f"\033[32m{x}\033[0m" + " " * (width - len(x)) for x in cells]
            lines.append(" | ".join(cells))
        else:
            lines.append(" | ".join(x.ljust(width) for x in cells).rstrip())
    return lines
