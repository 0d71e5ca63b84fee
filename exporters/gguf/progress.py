"""Export progress for people and programs: a tqdm bar on a terminal, `export_progress` events.

Stages are weighted so the overall fraction moves steadily: writing a direct type
and quantising take the time; verification a little; the Modelfile nothing.
"""

from __future__ import annotations

import sys
from typing import Optional


class ExportProgress:
    """Turns (stage, fraction-of-stage) reports into an overall fraction for a bar and events."""

    def __init__(self, sink=None, bar: Optional[bool] = None, target: str = "gguf"):
        self.sink = sink
        self.target = target
        self.steps: list[tuple[str, float]] = []
        self.done_weight = 0.0
        self.current: Optional[tuple[str, float]] = None
        self._bar = None
        self._last_emit = -1.0
        self._overall = 0.0
        if bar is None:
            bar = sys.stderr.isatty()
        if bar:
            from tqdm import tqdm

            self._bar = tqdm(total=1000, desc="gguf", unit="", bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}",
                             file=sys.stderr)

    def plan(self, steps: list[tuple[str, float]]) -> None:
        """Declare the steps as (name, weight)."""
        self.steps = steps
        self.total = sum(w for _, w in steps) or 1.0

    def start(self, name: str) -> None:
        weight = next((w for n, w in self.steps if n == name), 0.0)
        self.current = (name, weight)
        self.report(name, 0.0)

    def report(self, stage: str, fraction: float) -> None:
        """Progress within the current step (0..1)."""
        weight = self.current[1] if self.current else 0.0
        overall = min(1.0, (self.done_weight + weight * fraction) / getattr(self, "total", 1.0))
        overall = self._overall = max(overall, self._overall)  # a bar never moves backwards
        if self._bar is not None:
            self._bar.set_description_str(f"gguf: {stage}")
            self._bar.n = int(overall * 1000)
            self._bar.refresh()
        # Events at most every 1% (plus each stage start/end) keep the stream small.
        if self.sink is not None and (fraction in (0.0, 1.0) or overall - self._last_emit >= 0.01):
            self.sink.emit("export_progress", target=self.target, stage=stage, fraction=round(overall, 4))
            self._last_emit = overall

    def finish_step(self) -> None:
        if self.current:
            self.report(self.current[0], 1.0)
            self.done_weight += self.current[1]
            self.current = None

    def message(self, text: str) -> None:
        """A line for people, printed above the bar (stderr: stdout may carry the event stream)."""
        if self._bar is not None:
            self._bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr)

    def warning(self, message: str, hint: str) -> None:
        """Something to look at: printed, and a `warning` event."""
        self.message(f"warning: {message}")
        if self.sink is not None:
            self.sink.emit("warning", message=message, hint=hint)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.n = self._bar.total
            self._bar.refresh()
            self._bar.close()
