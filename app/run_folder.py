"""What the Runs list shows about a run folder, read from its files.

A run folder (layout: engine/runs.py) holds config.yaml and events.jsonl; its
status is the last run_end event, and a run that has none was interrupted
(resumable when a checkpoint exists). Nothing here imports torch.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import yaml

from app.event_compat import normalise
from engine.events import read_events


@dataclass
class RunSummary:
    """One row of the Runs list."""

    path: Path
    name: str
    status: str  # completed / interrupted / failed (from run_finished), or new
    model: str = ""
    data: str = ""
    method: str = ""
    stage: str = "sft"  # training stage (runs from engines before stages are SFT)
    step: Optional[int] = None
    total_steps: Optional[int] = None
    last_loss: Optional[float] = None
    eval_loss: Optional[float] = None
    started: Optional[float] = None
    exports: list = field(default_factory=list)
    checkpoints: list = field(default_factory=list)
    has_adapter: bool = False

    @property
    def date(self) -> str:
        t = self.started if self.started is not None else self.path.stat().st_mtime
        return dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M")

    @property
    def resumable(self) -> bool:
        return bool(self.checkpoints) and self.status in ("failed", "interrupted")


def looks_like_run(path: Path) -> bool:
    """A folder the engine wrote: config.yaml plus events, checkpoints or an adapter."""
    return (path / "config.yaml").is_file() and any(
        (path / p).exists() for p in ("events.jsonl", "adapter", "checkpoints", "merged"))


def list_exports(run: Path) -> list[Path]:
    """Exported artifacts: .gguf files and onnx-* folders under exports/."""
    exp = run / "exports"
    if not exp.is_dir():
        return []
    items = [p for p in exp.iterdir() if p.suffix == ".gguf" or (p.is_dir() and p.name.startswith("onnx"))]
    return sorted(items, key=lambda p: p.name)


def list_checkpoints(run: Path) -> list[Path]:
    """Complete checkpoints, oldest first (the engine renames a temp folder to step-N when done)."""
    ck = run / "checkpoints"
    if not ck.is_dir():
        return []
    steps = [p for p in ck.iterdir() if p.is_dir() and p.name.startswith("step-") and p.name[5:].isdigit()]
    return sorted(steps, key=lambda p: int(p.name[5:]))


def summarise_run(path: Path) -> RunSummary:
    """Status, progress, losses, date and exports of one run folder."""
    path = Path(path)
    events = read_events(path / "events.jsonl") if (path / "events.jsonl").is_file() else []
    s = RunSummary(path=path, name=path.name, status="new" if not events else "interrupted")
    try:
        cfg = yaml.safe_load((path / "config.yaml").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        cfg = {}
    s.model = str((cfg.get("model") or {}).get("name_or_path", ""))
    s.data = str((cfg.get("data") or {}).get("path", ""))
    s.method = str(cfg.get("method", ""))
    config_stage = cfg.get("stage")
    for ev in map(normalise, events):
        t = ev.get("type")
        if t == "run_started":
            s.started = s.started or ev.get("time")
            s.total_steps = ev.get("total_steps", s.total_steps)
            s.status = "interrupted"  # a resumed run starts again; only its own run_end counts
            s.stage = str(ev.get("stage") or s.stage)
        elif t == "step":
            s.step, s.last_loss = ev.get("step"), ev.get("loss")
            s.total_steps = ev.get("total_steps", s.total_steps)
        elif t == "eval":
            s.eval_loss = ev.get("loss")
        elif t == "run_finished":
            s.status = str(ev.get("status", "completed"))
            s.step = ev.get("step", s.step)
    if config_stage:  # the resolved config is what ran; the event is the fallback
        s.stage = str(config_stage)
    s.exports = list_exports(path)
    s.checkpoints = list_checkpoints(path)
    s.has_adapter = (path / "adapter").is_dir() or (path / "merged").is_dir() or (path / "final").is_dir()
    return s


def scan_runs(folders: list[Path]) -> list[RunSummary]:
    """Every run folder directly inside `folders` (or a folder that is itself a run), newest first."""
    seen, out = set(), []
    for folder in folders:
        folder = Path(folder)
        if not folder.is_dir():
            continue
        candidates = [folder] if looks_like_run(folder) else [p for p in folder.iterdir() if p.is_dir()]
        for p in candidates:
            key = p.resolve()
            if key in seen or not looks_like_run(p):
                continue
            seen.add(key)
            out.append(summarise_run(p))
    return sorted(out, key=lambda r: r.started or r.path.stat().st_mtime, reverse=True)
