"""The comparison table, as text (terminal, compare.md) with one line per method."""

from __future__ import annotations

COLUMNS = ("method", "group", "trainable", "peak GB", "tokens/s", "time", "train loss", "held-out loss", "answers", "export")


def _fmt(v, spec: str, none: str = "-") -> str:
    return none if v is None else format(v, spec)


def _params(n) -> str:
    if n is None:
        return "-"
    return f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n / 1e3:.1f}k"


def cells(row) -> list:
    """One row's cells, in COLUMNS order."""
    pct = row.trainable_pct
    trainable = "-" if row.trainable_params is None else f"{_params(row.trainable_params)} ({pct:.3g}%)"
    answers = "-" if row.answers_total is None else f"{row.answers_correct}/{row.answers_total}"
    heldout = _fmt(row.heldout_loss, ".3f")
    if row.status in ("failed", "refused"):
        return [row.method, row.group, row.status.upper(), "", "", "", "", "", "", row.error[:90]]
    return [row.method, row.group, trainable, _fmt(row.peak_memory_gb, ".2f"), _fmt(row.tokens_per_s, ".0f"),
            _fmt(row.seconds, ".0f", "-") + ("s" if row.seconds is not None else ""), _fmt(row.train_loss, ".3f"),
            heldout, answers, row.export]


def base_line(rows) -> str:
    """The untrained model's held-out figures (the bar every method must clear)."""
    done = [r for r in rows if r.base_heldout_loss is not None]
    if not done:
        return ""
    r = done[0]
    answers = f", answers {r.base_answers_correct}/{r.answers_total}" if r.answers_total is not None else ""
    return f"base model (no training): held-out loss {r.base_heldout_loss:.3f}{answers}"


def markdown(rows, meta: dict) -> str:
    """compare.md: the setup line, the table, the base line."""
    head = (f"Model {meta.get('model')}, data {meta.get('data')}, seed {meta.get('seed')}, "
            + (f"{meta.get('max_steps')} steps" if meta.get("max_steps") else f"{meta.get('epochs')} epochs")
            + f", lr {meta.get('lr')} x each method's factor" * (meta.get("lr_policy") == "recommended")
            + f", lr {meta.get('lr')} for all" * (meta.get("lr_policy") == "same"))
    lines = [head, "", "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(str(c) for c in cells(r)) + " |" for r in rows]
    base = base_line(rows)
    return "\n".join(lines + ([f"\n{base}"] if base else [])) + "\n"


def text_table(rows) -> str:
    """Aligned columns for the terminal."""
    table = [list(COLUMNS)] + [cells(r) for r in rows]
    widths = [max(len(str(row[i])) for row in table) for i in range(len(COLUMNS))]
    out = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in table]
    base = base_line(rows)
    return "\n".join(out + ([base] if base else []))
