"""The live training curves: train and eval loss over steps, and the learning rate.

Points arrive one event at a time; redrawing matplotlib on every event would eat
the GUI thread on fast runs, so new points mark the plot dirty and a timer
redraws at most a few times per second.
"""

from __future__ import annotations

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from PySide6.QtCore import QTimer

from app.theme import plot_colours

REDRAW_MS = 250


class LossPlot(FigureCanvasQTAgg):
    """add_step(step, loss, lr) / add_eval(step, loss) / clear()."""

    def __init__(self, parent=None):
        self.figure = Figure(figsize=(7, 4), layout="constrained")
        super().__init__(self.figure)
        self.setParent(parent)
        self.setMinimumHeight(260)
        self.ax_loss, self.ax_lr = self.figure.subplots(2, 1, sharex=True, height_ratios=[3, 1.2])
        self.steps: list = []
        self.losses: list = []
        self.lrs: list = []
        self.eval_steps: list = []
        self.eval_losses: list = []
        self.total_steps = 0
        self._dirty = False
        self._timer = QTimer(self)
        self._timer.setInterval(REDRAW_MS)
        self._timer.timeout.connect(self._redraw_if_dirty)
        self._timer.start()
        self.redraw()

    def clear(self) -> None:
        self.steps, self.losses, self.lrs, self.eval_steps, self.eval_losses = [], [], [], [], []
        self.total_steps = 0
        self.redraw()

    def set_total_steps(self, total: int) -> None:
        self.total_steps = int(total or 0)
        self._dirty = True

    def add_step(self, step: int, loss, lr) -> None:
        if self.steps and step <= self.steps[-1]:
            # a resumed run repeats from its checkpoint: drop the points it will redo
            keep = [i for i, s in enumerate(self.steps) if s < step]
            self.steps = [self.steps[i] for i in keep]
            self.losses = [self.losses[i] for i in keep]
            self.lrs = [self.lrs[i] for i in keep]
        self.steps.append(step)
        self.losses.append(float("nan") if loss is None else float(loss))
        self.lrs.append(float("nan") if lr is None else float(lr))
        self._dirty = True

    def add_eval(self, step: int, loss) -> None:
        if loss is not None:
            self.eval_steps.append(step)
            self.eval_losses.append(float(loss))
            self._dirty = True

    def point_count(self) -> int:
        return len(self.steps)

    def _redraw_if_dirty(self) -> None:
        if self._dirty:
            self.redraw()

    def redraw(self) -> None:
        self._dirty = False
        c = plot_colours(self)
        self.figure.set_facecolor(c["window"])
        for ax in (self.ax_loss, self.ax_lr):
            ax.clear()
            ax.set_facecolor(c["face"])
            for spine in ax.spines.values():
                spine.set_color(c["text"])
            ax.tick_params(colors=c["text"], labelsize=8)
            ax.grid(True, alpha=0.25)
        self.ax_loss.set_ylabel("loss", color=c["text"], fontsize=9)
        self.ax_lr.set_ylabel("learning rate", color=c["text"], fontsize=9)
        self.ax_lr.set_xlabel("optimizer step", color=c["text"], fontsize=9)
        self.ax_lr.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole numbers
        if self.steps:
            self.ax_loss.plot(self.steps, self.losses, color="#3d7be0", linewidth=1.6, label="train loss",
                              marker="o" if len(self.steps) < 30 else None, markersize=3)
            self.ax_lr.plot(self.steps, self.lrs, color="#bf8700", linewidth=1.4)
            self.ax_lr.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
            self.ax_lr.yaxis.get_offset_text().set_color(c["text"])
            self.ax_lr.yaxis.get_offset_text().set_fontsize(8)
        if self.eval_steps:
            self.ax_loss.plot(self.eval_steps, self.eval_losses, color="#cf222e", linewidth=1.4, marker="s",
                              markersize=4, label="eval loss")
        if self.steps or self.eval_steps:
            leg = self.ax_loss.legend(loc="upper right", fontsize=8, facecolor=c["face"], edgecolor=c["grid"])
            for t in leg.get_texts():
                t.set_color(c["text"])
        else:
            self.ax_loss.text(0.5, 0.5, "the loss curve appears here when training starts", ha="center",
                              va="center", color=c["text"], fontsize=9, transform=self.ax_loss.transAxes)
        if self.total_steps:
            self.ax_lr.set_xlim(0, max(self.total_steps, self.steps[-1] if self.steps else 0) + 0.5)
        self.draw_idle()
