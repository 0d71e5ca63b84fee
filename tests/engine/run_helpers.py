"""Training runs for tests, through the public entry point (what `engine train` calls)."""

from __future__ import annotations

from pathlib import Path

from engine.events import EventSink


def train(cfg, resume=None):
    """(result, events, recipe) of one run; events are also written to the run's events.jsonl."""
    from engine.train.run import run_training

    events = []
    sink = EventSink(listeners=[events.append])
    sink.add_file(Path(cfg.output_dir) / "events.jsonl")
    try:
        result, recipe = run_training(cfg, sink, resume)
    finally:
        sink.close()
    return result, events, recipe
