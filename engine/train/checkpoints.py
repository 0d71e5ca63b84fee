"""Atomic, resumable checkpoints in <run>/checkpoints/step-N.

The Trainer writes a checkpoint into a staging folder; only when every file is
written is it renamed to step-N. A crash or a full disk mid-save leaves the
previous step-N folders untouched, and `latest_checkpoint` never returns a
half-written one.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Optional

from engine.errors import EdgetuneError

STEP_RE = re.compile(r"^step-(\d+)$")


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := STEP_RE.match(p.name)) and (p / "trainer_state.json").is_file()]
    return [p for _, p in sorted(found)]


def latest_checkpoint(run_dir: Path) -> Optional[Path]:
    cps = list_checkpoints(run_dir)
    return cps[-1] if cps else None


def resolve_resume(spec: str, run_dir: Path) -> Path:
    """`latest` -> newest checkpoint of the run; a run folder -> its newest; a step-N folder -> itself."""
    if spec == "latest":
        cp = latest_checkpoint(run_dir)
        if cp is None:
            raise EdgetuneError(f"Nothing to resume in '{run_dir}': it has no complete checkpoint. Start the run without --resume.")
        return cp
    p = Path(spec)
    if (p / "trainer_state.json").is_file():
        return p
    cp = latest_checkpoint(p)
    if cp is None:
        raise EdgetuneError(f"--resume {spec}: not a checkpoint folder and no checkpoints/step-N inside it.")
    return cp


def commit_staged(staged: Path, final: Path) -> None:
    """Move a fully written checkpoint into place (replacing an older copy of the same step)."""
    if final.exists():
        shutil.rmtree(final)
    staged.rename(final)


def rotate(run_dir: Path, keep: int, protect: Optional[Path] = None) -> None:
    """Delete all but the newest `keep` checkpoints, never the protected (best) one."""
    cps = list_checkpoints(run_dir)
    for p in cps[:-keep] if keep > 0 else []:
        if protect is None or p.resolve() != Path(protect).resolve():
            shutil.rmtree(p, ignore_errors=True)
