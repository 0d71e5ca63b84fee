"""Splitting a child's stdout into events and text lines, and reading either schema revision."""

from __future__ import annotations

import json

from app.event_compat import normalise
from app.event_lines import EventLineBuffer, TextLine
from engine.events import make_event


def test_events_split_across_reads_are_reassembled():
    ev = make_event("checkpoint", step=3, path="/runs/x/checkpoints/step-3", best=False)
    data = (json.dumps(ev) + "\nplain progress text\n").encode()
    buf = EventLineBuffer()
    items = list(buf.feed(data[:17])) + list(buf.feed(data[17:40])) + list(buf.feed(data[40:]))
    assert items == [ev, TextLine("plain progress text")]


def test_unterminated_last_line_is_flushed_and_bad_json_is_text():
    buf = EventLineBuffer()
    assert list(buf.feed(b'{"type": "step", "step": 1')) == []
    assert list(buf.flush()) == [TextLine('{"type": "step", "step": 1')]
    assert list(buf.feed(b'{"no_type": 1}\n[1, 2]\n')) == [TextLine('{"no_type": 1}'), TextLine("[1, 2]")]


def test_utf8_split_inside_a_character():
    buf = EventLineBuffer()
    data = "Quillon — Brightmoss\n".encode()
    cut = data.index("—".encode()) + 1
    assert list(buf.feed(data[:cut])) + list(buf.feed(data[cut:])) == [TextLine("Quillon — Brightmoss")]


def test_first_schema_revision_reads_like_the_current_one():
    assert normalise({"type": "train_loss", "step": 2, "loss": 1.0})["type"] == "step"
    assert normalise({"type": "eval", "step": 2, "eval_loss": 0.5})["loss"] == 0.5
    end = normalise({"type": "run_end", "status": "stopped", "step": 4, "adapter": "/a", "train_loss": 0.3, "seconds": 9})
    assert end["type"] == "run_finished" and end["status"] == "interrupted"
    assert end["metrics"] == {"train_loss": 0.3, "seconds": 9} and end["paths"] == {"adapter": "/a"}
    assert normalise({"type": "message", "level": "warning", "text": "x"})["type"] == "warning"
    assert normalise({"type": "run_started", "run_dir": "/r"})["run_dir"] == "/r"
