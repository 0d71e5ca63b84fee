"""Split a child process's stdout into engine events and plain text lines.

`engine ... --events -` writes one JSON object per line (schema: engine/events.py).
Output arrives in arbitrary chunks, so a line may be split across reads; this
buffer keeps the unfinished tail until its newline arrives. Lines that are not
JSON objects with a "type" (a library printing to stdout, a progress bar) are
passed on as text so the log pane still shows them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Iterator, Union


@dataclass
class TextLine:
    """A line of output that is not an event."""

    text: str


class EventLineBuffer:
    """Feed it bytes as they arrive; iterate the complete events and text lines."""

    def __init__(self) -> None:
        self._tail = b""

    def feed(self, data: bytes) -> Iterator[Union[dict, TextLine]]:
        """Yield every complete line in `data` (plus what was buffered) as an event dict or a TextLine."""
        self._tail += bytes(data)
        *lines, self._tail = self._tail.split(b"\n")
        for raw in lines:
            yield parse_line(raw)

    def flush(self) -> Iterator[Union[dict, TextLine]]:
        """Yield the last unterminated line (a killed process may stop mid-line)."""
        if self._tail.strip():
            raw, self._tail = self._tail, b""
            yield parse_line(raw)


def parse_line(raw: bytes) -> Union[dict, TextLine]:
    """One line -> an event dict when it is a JSON object with a 'type', else TextLine."""
    text = raw.decode("utf-8", errors="replace").rstrip("\r")
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            obj = json.loads(stripped)
        except json.JSONDecodeError:
            return TextLine(text)
        if isinstance(obj, dict) and isinstance(obj.get("type"), str):
            return obj
    return TextLine(text)
