"""Read engine events of either schema revision with one set of names.

engine/events.py owns the schema. Its first revision named the events run_start /
train_loss / run_end / message; the training engine emits run_started / step /
run_finished / warning (with a hint) and eval's `loss`. The app reads both, so a
run folder written by either engine (and its events.jsonl replayed in the Runs
list) plots the same. Readers ignore fields they do not know, per the schema.
"""

from __future__ import annotations

# old type -> current type
TYPE_ALIASES = {"run_start": "run_started", "train_loss": "step", "run_end": "run_finished"}


def normalise(event: dict) -> dict:
    """A copy of `event` with current type and field names (run_started, step, eval.loss, run_finished...)."""
    ev = dict(event)
    t = TYPE_ALIASES.get(ev.get("type", ""), ev.get("type", ""))
    ev["type"] = t
    if t == "message" and ev.get("level") == "warning":
        ev["type"] = "warning"
        ev.setdefault("message", ev.get("text", ""))
    if t == "message":
        ev.setdefault("message", ev.get("text", ""))
    if t == "eval" and "loss" not in ev and "eval_loss" in ev:
        ev["loss"] = ev["eval_loss"]
    if t == "run_finished":
        metrics = dict(ev.get("metrics") or {})
        if "train_loss" in ev:
            metrics.setdefault("train_loss", ev["train_loss"])
        if "seconds" in ev:
            metrics.setdefault("seconds", ev["seconds"])
        ev["metrics"] = metrics
        paths = dict(ev.get("paths") or {})
        if ev.get("adapter"):
            paths.setdefault("adapter", ev["adapter"])
        ev["paths"] = paths
        ev["status"] = {"stopped": "interrupted"}.get(ev.get("status"), ev.get("status", "completed"))
    return ev
