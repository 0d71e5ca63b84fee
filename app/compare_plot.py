"""The Compare view's plot: the training loss of every method of a comparison on one axis.

Finished methods come from compare.json (their `losses`); the method training now adds
its points live from `engine compare`'s progress lines. Like LossPlot, new points mark
the plot dirty and a timer redraws at most a few times per second.
"""

from __future__ import annotations

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from PySide6.QtCore import QTimer

from app.loss_plot import REDRAW_MS
from app.theme import plot_colours


class CompareLossPlot(FigureCanvasQTAgg):
    """set_curve(method, [(step, loss)...]) / add_point(method, step, loss) / clear()."""

    def __init__(self, parent=None):
        self.figure = Figure(figsize=(6, 3.5), layout="constrained")
        super().__init__(self.figure)
        self.setParent(parent)
        self.setMinimumHeight(220)
        self.ax = self.figure.subplots()
        self.curves: dict[str, list[tuple[int, float]]] = {}  # method -> (step, loss), in the order methods ran
        self._dirty = False
        self._timer = QTimer(self)
        self._timer.setInterval(REDRAW_MS)
        self._timer.timeout.connect(lambda: self._dirty and self.redraw())
        self._timer.start()
        self.redraw()

    def clear(self) -> None:
        """No curves (another comparison folder)."""
        self.curves = {}
        self.redraw()

    def set_curve(self, method: str, points) -> None:
        """Replace a method's curve (from compare.json)."""
        pts = [(int(s), float(v)) for s, v in points or [] if v is not None]
        if pts or method not in self.curves:
            self.curves[method] = pts
            self._dirty = True

    def add_point(self, method: str, step: int, loss: float) -> None:
        """One live point; a resumed method repeats steps from its checkpoint, so later points are dropped."""
        pts = [p for p in self.curves.setdefault(method, []) if p[0] < step]
        self.curves[method] = pts + [(int(step), float(loss))]
        self._dirty = True

    def redraw(self) -> None:
        """Draw every method's curve now (the timer calls this when points arrived)."""
        self._dirty = False
        c = plot_colours(self)
        self.figure.set_facecolor(c["window"])
        ax = self.ax
        ax.clear()
        ax.set_facecolor(c["face"])
        for spine in ax.spines.values():
            spine.set_color(c["text"])
        ax.tick_params(colors=c["text"], labelsize=8)
        ax.grid(True, alpha=0.25)
        ax.set_xlabel("optimizer step", color=c["text"], fontsize=9)
        ax.set_ylabel("train loss", color=c["text"], fontsize=9)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        drawn = False
        for method, pts in self.curves.items():
            if pts:
                ax.plot([s for s, _ in pts], [v for _, v in pts], linewidth=1.4, label=method,
                        marker="o" if len(pts) < 30 else None, markersize=2.5)
                drawn = True
        if drawn:
            leg = ax.legend(loc="upper right", fontsize=7, facecolor=c["face"], edgecolor=c["grid"],
                            ncols=2 if len(self.curves) > 6 else 1)
            for t in leg.get_texts():
                t.set_color(c["text"])
        else:
            ax.text(0.5, 0.5, "each method's loss curve appears here as it trains", ha="center", va="center",
                    color=c["text"], fontsize=9, transform=ax.transAxes)
        self.draw_idle()
