"""The event stream: one versioned JSON-lines schema for everything a long job reports.

`engine train --events -` writes one JSON object per line to stdout (or a file);
the run folder keeps the same lines in events.jsonl. The CLI's progress bar, the
desktop app's plots and the tests all read these events, so this module is the
one place that defines them.

Every event has: "v" (schema version), "type", "time" (unix seconds) and the
fields listed in SCHEMA for its type. Readers must ignore fields they do not know.

    {"v": 1, "type": "step", "time": 1732380000.1, "step": 3, "total_steps": 60, "epoch": 0.6,
     "loss": 2.41, "lr": 0.0005, "grad_norm": 1.7, "tokens_per_s": 812.0, "peak_memory_gb": 1.2}
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import IO, Callable, Iterable, Optional

SCHEMA_VERSION = 1

# type -> required fields (beyond v/type/time), with what they mean.
SCHEMA: dict[str, dict[str, str]] = {
    "run_started": {"run_dir": "run folder", "stage": "training stage (sft, dpo, orpo, simpo, kto, rm, grpo, rloo)",
                    "config": "resolved config (nested dict)",
                    "backend": "training backend in use", "backend_reason": "why auto chose it",
                    "device": "cpu/cuda/mps", "dtype": "compute dtype", "trainable_params": "trainable parameter count",
                    "total_params": "all parameters", "train_records": "training sequences",
                    "eval_records": "evaluation sequences", "total_steps": "optimizer steps planned",
                    "resumed_from": "checkpoint path or null"},
    "plan": {"total_gb": "planned peak memory (GB)", "batch_size": "micro-batch size in use",
             "gradient_checkpointing": "whether it is on"},
    "step": {"step": "optimizer step", "total_steps": "planned steps", "epoch": "fractional epoch",
             "loss": "mean train loss since the last step event", "lr": "learning rate",
             "grad_norm": "gradient norm before clipping (null if unknown)",
             "tokens_per_s": "trained (non-padding) tokens per second", "peak_memory_gb": "peak memory so far (GB)"},
    # optional on `step`: "metrics", the stage's own numbers (see OPTIONAL)
    "eval": {"step": "optimizer step", "loss": "mean loss on the eval split", "perplexity": "exp(loss)"},
    "checkpoint": {"step": "optimizer step", "path": "checkpoint folder", "best": "whether it is the best so far"},
    "oom": {"step": "step where memory ran out", "batch_size": "new micro-batch size",
            "grad_accum": "new gradient accumulation"},
    "export_progress": {"target": "gguf/onnx", "stage": "what is happening", "fraction": "0..1"},
    "warning": {"message": "what to look at", "hint": "what to do about it"},
    # stage=grpo/rloo: a few sampled answers of the last generation batch, at every logging step
    "completions": {"step": "optimizer step", "samples": "list of {prompt (last user turn), completion, "
                    "rewards: {reward name: score}, advantage}"},
    "error": {"kind": "oom/nan/data/config/model/disk/interrupted/reward/internal/rank (a process of a "
                      "multi-process run failed)", "message": "what went wrong",
              "hint": "how to fix it"},
    # engine serve: the server is listening, a model finished loading, one request was answered, it stopped
    "serve_started": {"url": "base URL of the OpenAI API (ends in /v1)", "host": "bound address", "port": "bound port",
                      "models": "model names requests may use", "auth": "whether an API key is required"},
    "model_loaded": {"model": "served name", "label": "backend and file, e.g. gguf:model-q8_0.gguf",
                     "seconds": "load time"},
    "serve_request": {"model": "served name or null", "path": "URL path", "status": "HTTP status",
                      "prompt_tokens": "prompt tokens", "completion_tokens": "generated tokens",
                      "seconds": "request latency until the last byte", "tokens_per_s": "generated tokens per second"},
    "serve_stopped": {"seconds": "how long the server ran"},
    "run_finished": {"status": "completed/stopped/interrupted/failed", "step": "last optimizer step",
                     "paths": "dict of output paths (adapter, best_checkpoint, run_dir, ...)",
                     "metrics": "dict of final metrics (train_loss, eval_loss, seconds, tokens_per_s, ...)"},
}


# Optional fields: present when they apply, readers must tolerate them missing.
OPTIONAL: dict[str, dict[str, str]] = {
    "run_started": {"processes": "training processes (dist.num_processes x nodes; 1 in a plain run)",
                    "effective_batch": "samples per optimizer step: batch_size x grad_accum x processes",
                    "host_embedding_params": "values of the input-embedding table kept in host RAM (train.offload_embedding)"},
    "error": {"rank": "kind rank: the global rank of the process that failed"},
    "model_loaded": {"accepts_images": "whether the model takes image_url parts (a vision-language model)"},
    "step": {"metrics": "the stage's own metrics, a dict of floats: dpo/orpo/simpo reward_chosen, reward_rejected, "
                        "reward_margin, reward_accuracy (orpo also log_odds_ratio); kto reward_chosen, "
                        "reward_rejected, reward_margin, kl; rm accuracy, margin; grpo/rloo reward (weighted sum, mean over the "
                        "sampled answers), reward_std, reward_<name> and reward_<name>_std per reward, kl, "
                        "completion_len (tokens), truncated (share cut at rl.max_completion_len), clip_ratio, "
                        "entropy, flat_groups (share of prompts whose answers all scored alike). Rewards of the "
                        "preference stages are the implicit rewards of the trained answers on the batch (rm: the "
                        "score head's).",
             "rank_memory_gb": "N processes: each rank's peak memory so far (GB), in rank order"},
}


def make_event(type: str, **fields) -> dict:
    """Build an event, checking its type and required fields against SCHEMA."""
    if type not in SCHEMA:
        raise ValueError(f"unknown event type {type!r}; known: {', '.join(SCHEMA)}")
    missing = [k for k in SCHEMA[type] if k not in fields]
    if missing:
        raise ValueError(f"event {type!r} is missing field(s) {missing}")
    return {"v": SCHEMA_VERSION, "type": type, "time": round(time.time(), 3), **fields}


class EventSink:
    """Writes events to any number of JSON-lines streams and calls listeners."""

    def __init__(self, streams: Iterable[IO[str]] = (), listeners: Iterable[Callable[[dict], None]] = ()):
        self.streams = list(streams)
        self.listeners = list(listeners)

    def emit(self, type: str, **fields) -> dict:
        event = make_event(type, **fields)
        line = json.dumps(event, default=str)
        for s in self.streams:
            s.write(line + "\n")
            s.flush()
        for fn in self.listeners:
            fn(event)
        return event

    def add_file(self, path: Path, append: bool = True) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.streams.append(open(path, "a" if append else "w", encoding="utf-8"))

    def close(self) -> None:
        for s in self.streams:
            if s not in (sys.stdout, sys.stderr):
                s.close()


def open_events_target(target: Optional[str]) -> list[IO[str]]:
    """`--events -` means stdout; any other value is a file path."""
    if not target:
        return []
    if target == "-":
        return [sys.stdout]
    return [open(target, "a", encoding="utf-8")]


def read_events(path: Path) -> list[dict]:
    """All events of a run's events.jsonl (bad lines are skipped: a killed run may end mid-line)."""
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out
