"""The recipe's own metrics next to the loss curve: reward margin and accuracy for DPO, accuracy for a reward model.

Step events of preference stages carry a `metrics` dict (keys: app/recipe_metrics.py).
Shares (accuracy, truncated answers) go on a 0..1 axis on top, rewards, margin and KL on a
value axis below, and lengths (RL answer length) in tokens on an axis of their own at the bottom;
whichever keys arrive are plotted. Like LossPlot,
points mark the plot dirty and a timer redraws at most a few times per second.
"""

from __future__ import annotations

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from PySide6.QtCore import QTimer

from app.loss_plot import REDRAW_MS
from app.recipe_metrics import AXES, axis_of, metric_colour, metric_label, numeric_metrics
from app.theme import plot_colours


class MetricsPlot(FigureCanvasQTAgg):
    """add_step(step, metrics) / set_stage(name) / set_total_steps(n) / clear()."""

    def __init__(self, parent=None):
        self.figure = Figure(figsize=(5, 4), layout="constrained")
        super().__init__(self.figure)
        self.setParent(parent)
        self.setMinimumHeight(260)
        self.series: dict[str, tuple[list, list]] = {}  # key -> (steps, values), in arrival order
        self.stage = ""
        self.total_steps = 0
        self.axes: dict[str, object] = {}  # 'share' / 'value' -> the axes drawn last
        self._dirty = False
        self._timer = QTimer(self)
        self._timer.setInterval(REDRAW_MS)
        self._timer.timeout.connect(lambda: self._dirty and self.redraw())
        self._timer.start()

    def clear(self) -> None:
        self.series, self.total_steps, self.stage = {}, 0, ""
        self.redraw()

    def set_stage(self, stage: str) -> None:
        self.stage = str(stage or "")
        self._dirty = True

    def set_total_steps(self, total: int) -> None:
        self.total_steps = int(total or 0)
        self._dirty = True

    def add_step(self, step: int, metrics) -> None:
        """Add one step's metrics (non-numeric entries are ignored)."""
        for key, value in numeric_metrics(metrics).items():
            steps, values = self.series.setdefault(key, ([], []))
            if steps and step <= steps[-1]:  # a resumed run repeats from its checkpoint
                keep = [i for i, s in enumerate(steps) if s < step]
                steps[:] = [steps[i] for i in keep]
                values[:] = [values[i] for i in keep]
            steps.append(step)
            values.append(value)
        self._dirty = True

    def keys(self) -> list[str]:
        return list(self.series)

    def redraw(self) -> None:
        self._dirty = False
        c = plot_colours(self)
        self.figure.clear()
        self.figure.set_facecolor(c["window"])
        groups = [(kind, [k for k in self.series if axis_of(k) == kind]) for kind in AXES]
        groups = [g for g in groups if g[1]] or [("value", [])]
        axes = self.figure.subplots(len(groups), 1, sharex=True, squeeze=False)[:, 0]
        self.axes = {}
        for ax, (kind, keys) in zip(axes, groups):
            self.axes[kind] = ax
            ax.set_facecolor(c["face"])
            for spine in ax.spines.values():
                spine.set_color(c["text"])
            ax.tick_params(colors=c["text"], labelsize=8)
            ax.grid(True, alpha=0.25)
            for i, key in enumerate(keys):
                steps, ys = self.series[key]
                ax.plot(steps, ys, color=metric_colour(key, i), linewidth=1.5, label=metric_label(key),
                        marker="o" if len(steps) < 30 else None, markersize=3)
            if kind == "share":
                ax.set_ylim(-0.03, 1.03)
                ax.set_ylabel("accuracy" if all("accuracy" in k for k in keys) else "share", color=c["text"], fontsize=9)
                where = "lower right"  # accuracy climbs from ~0.5: the corner below it stays free
            elif kind == "length":
                ax.set_ylim(bottom=0)
                ax.set_ylabel("tokens", color=c["text"], fontsize=9)
                where = "upper right"
            else:
                ax.axhline(0.0, color=c["text"], linewidth=0.6, alpha=0.5)
                rewards = keys and all(k.startswith("reward_") for k in keys)
                ax.set_ylabel("reward" if rewards else "value", color=c["text"], fontsize=9)
                lo, hi = ax.get_ylim()
                ax.set_ylim(lo, hi + 0.1 * len(keys) * (hi - lo))  # a free band on top for the legend
                where = "upper left"
            if keys:
                leg = ax.legend(loc=where, fontsize=7, facecolor=c["face"], edgecolor=c["grid"], framealpha=0.85)
                for t in leg.get_texts():
                    t.set_color(c["text"])
        axes[-1].set_xlabel("optimizer step", color=c["text"], fontsize=9)
        axes[-1].xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole numbers
        last = max((s[-1] for s, _ in self.series.values() if s), default=0)
        if self.total_steps or last:
            axes[-1].set_xlim(0, max(self.total_steps, last) + 0.5)
        title = f"{self.stage.upper()} metrics" if self.stage else "training metrics"
        axes[0].set_title(title, color=c["text"], fontsize=9)
        if not self.series:
            axes[0].text(0.5, 0.5, "this stage's metrics appear here", ha="center", va="center", color=c["text"],
                         fontsize=9, transform=axes[0].transAxes)
        self.draw_idle()
