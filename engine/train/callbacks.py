"""Trainer callbacks: events and progress, early stopping, NaN guard, graceful stop.

They read the Trainer's state and write the engine's event stream; none of them
changes the optimisation itself, so a run with and without them is identical.
"""

from __future__ import annotations

import math
import signal
import sys
import time

from transformers import TrainerCallback

from engine.events import EventSink


def peak_memory_gb(device: str) -> float:
    import torch

    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 1e9
    from engine.process_memory import peak_rss_bytes

    return peak_rss_bytes() / 1e9


class EventsCallback(TrainerCallback):
    """Turns Trainer logs into `step` and `eval` events; draws a progress bar on a terminal."""

    def __init__(self, sink: EventSink, device: str, progress: bool, metrics: dict | None = None,
                 progress_metric: str | None = None):
        self.sink = sink
        self.device = device
        self.progress = progress
        self.metrics = dict(metrics or {})  # trainer log key -> name in the step event's `metrics`
        self.progress_metric = progress_metric
        self.bar = None
        self.last_time = None
        self.last_tokens = 0
        self.last_loss = None
        self.last_metrics: dict = {}
        self.samples_per_epoch = 0
        self.start_epoch = 0.0

    def samples_seen(self, state) -> float:
        """Training samples (sequences, pairs, completions) processed since this process started training."""
        return max(0.0, (state.epoch or 0.0) - self.start_epoch) * self.samples_per_epoch

    def on_train_begin(self, args, state, control, **kw):
        self.last_time = time.perf_counter()
        self.last_tokens = state.num_input_tokens_seen
        self.start_epoch = state.epoch or 0.0
        if self.progress:
            from tqdm import tqdm

            self.bar = tqdm(total=state.max_steps, initial=state.global_step, desc="train", unit="step", file=sys.stderr, dynamic_ncols=True)

    def on_log(self, args, state, control, logs=None, **kw):
        logs = logs or {}
        if "loss" in logs:
            now = time.perf_counter()
            tokens = state.num_input_tokens_seen - self.last_tokens
            tps = tokens / max(now - self.last_time, 1e-9)
            self.last_time, self.last_tokens = now, state.num_input_tokens_seen
            self.last_loss = float(logs["loss"])
            grad_norm = logs.get("grad_norm")
            extra = {}
            metrics = {name: round(float(logs[key]), 6) for key, name in self.metrics.items() if key in logs}
            if metrics:
                extra["metrics"] = metrics
                self.last_metrics = metrics
            peak = peak_memory_gb(self.device)
            from engine.train.ranks import gather_floats

            per_rank = gather_floats(peak)  # every rank logs this step together; N ranks: each one's peak
            if per_rank is not None:
                extra["rank_memory_gb"] = per_rank
            self.sink.emit(
                "step", step=state.global_step, total_steps=state.max_steps, epoch=round(state.epoch or 0.0, 4),
                loss=self.last_loss, lr=float(logs.get("learning_rate", 0.0)),
                grad_norm=None if grad_norm is None else float(grad_norm), tokens_per_s=round(tps, 1),
                peak_memory_gb=round(peak, 3), **extra,
            )
            if self.bar is not None:
                shown = {"loss": f"{self.last_loss:.4f}", "tok_s": f"{tps:.0f}"}
                if self.progress_metric and self.progress_metric in metrics:
                    shown[self.progress_metric] = f"{metrics[self.progress_metric]:.3f}"
                self.bar.set_postfix(**shown)
        if "eval_loss" in logs:
            loss = float(logs["eval_loss"])
            self.sink.emit("eval", step=state.global_step, loss=loss, perplexity=math.exp(min(loss, 50.0)))

    def on_step_end(self, args, state, control, **kw):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)

    def on_train_end(self, args, state, control, **kw):
        if self.bar is not None:
            self.bar.close()


class NanGuard(TrainerCallback):
    """Stops at the first non-finite loss without saving, so the last good checkpoint stays the latest."""

    def __init__(self):
        self.bad_step = None

    def on_log(self, args, state, control, logs=None, **kw):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            self.bad_step = state.global_step
            control.should_training_stop = True
            control.should_save = False


class EarlyStopping(TrainerCallback):
    """Stops when eval loss has not improved for `patience` evaluations; remembers the best step."""

    def __init__(self, patience: int):
        self.patience = patience
        self.best = math.inf
        self.best_step = None
        self.bad = 0

    def on_evaluate(self, args, state, control, metrics=None, **kw):
        loss = (metrics or {}).get("eval_loss")
        if loss is None:
            return
        if loss < self.best - 1e-6:
            self.best, self.best_step, self.bad = loss, state.global_step, 0
        else:
            self.bad += 1
            if self.patience and self.bad >= self.patience:
                control.should_training_stop = True
        control.should_save = True  # save every evaluated step so the best one can be kept


class GracefulStop(TrainerCallback):
    """Ctrl-C / SIGTERM: finish the current step, save a checkpoint, stop; the run stays resumable."""

    def __init__(self):
        self.requested = False
        self._old = {}

    def install(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not in the main thread
                pass

    def uninstall(self) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)

    def _handle(self, signum, frame):
        if self.requested:  # a second Ctrl-C means now
            raise KeyboardInterrupt
        self.requested = True
        print("\nstopping after this step; saving a checkpoint (Ctrl-C again to abort)", file=sys.stderr)

    def on_step_end(self, args, state, control, **kw):
        if self.requested:
            control.should_save = True
            control.should_training_stop = True
