"""Histogram of record lengths in tokens, with the max_len cut-off drawn in."""

from __future__ import annotations

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure

from app.theme import plot_colours


class TokenHistogram(FigureCanvasQTAgg):
    """Call `plot(lengths, max_len)`; records right of the red line get truncated."""

    def __init__(self, parent=None):
        self.figure = Figure(figsize=(5, 2.6), layout="constrained")
        super().__init__(self.figure)
        self.setParent(parent)
        self.setMinimumHeight(200)
        self.ax = self.figure.add_subplot(111)
        self.lengths: list = []
        self.max_len = 0
        self.plot([], 0)

    def plot(self, lengths: list, max_len: int) -> None:
        self.lengths, self.max_len = list(lengths), max_len
        c = plot_colours(self)
        self.figure.set_facecolor(c["window"])
        ax = self.ax
        ax.clear()
        ax.set_facecolor(c["face"])
        for spine in ax.spines.values():
            spine.set_color(c["text"])
        ax.tick_params(colors=c["text"], labelsize=8)
        ax.set_xlabel("tokens per record", color=c["text"], fontsize=9)
        ax.set_ylabel("records", color=c["text"], fontsize=9)
        if lengths:
            bins = min(40, max(5, len(set(lengths))))
            ax.hist(lengths, bins=bins, color="#3d7be0", edgecolor="#2a5db0", linewidth=0.6)
            longest = max(lengths)
            # Draw the cut-off only when it is near the data; far away it would squash the bars to a sliver.
            if max_len and max_len <= 1.5 * longest:
                ax.axvline(max_len, color="#d1242f", linestyle="--", linewidth=1.2)
                ax.text(max_len, ax.get_ylim()[1] * 0.95, f"max_len {max_len} ", color="#d1242f", fontsize=8,
                        va="top", ha="right")
            elif max_len:
                ax.text(0.98, 0.95, f"max_len {max_len}: every record fits", color="#1a7f37", fontsize=8,
                        va="top", ha="right", transform=ax.transAxes)
        else:
            ax.text(0.5, 0.5, "no data yet", ha="center", va="center", color=c["text"], transform=ax.transAxes)
        self.draw_idle()
