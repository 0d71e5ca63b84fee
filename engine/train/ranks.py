"""Which process am I, and what may I write: the run-folder contract for N processes.

Under `engine train` with dist.num_processes > 1 every rank runs the same recipe
(engine/train/launch.py starts them). One run folder stays one run folder because:

- only the main rank (RANK 0) writes events, config.yaml, the fingerprint and the final
  adapter: `rank_sink` gives the other ranks a sink that writes nothing;
- checkpoints are written by every rank into one staging folder (the trainer's own save path:
  rank 0 the weights and optimizer, each rank its RNG state), between barriers, and rank 0
  alone renames the folder into place (engine/train/trainer.py);
- a stop (Ctrl-C / SIGTERM on the launcher, which writes the stop file, or a signal on any rank)
  is shared by an all-reduce after every step, so every rank saves the same step and stops;
- each rank leaves launch/rank-N.json (pid, status, last message), and the non-main ranks'
  stderr goes to launch/rank-N.log, so the launcher can name a rank that died and what it said.

The rank comes from the environment torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK), so this module
answers before torch.distributed is initialised, and says "rank 0 of 1" in a plain run.
"""

from __future__ import annotations

import json
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

LAUNCHED = "EDGETUNE_LAUNCHED"  # set by the launcher in every rank's environment
STOP_FILE = "STOP"


def rank() -> int:
    """This process's global rank (0 in a plain run)."""
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    """This process's rank on its node: the index of the GPU it trains on."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def world_size() -> int:
    """How many processes train together (1 in a plain run)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main() -> bool:
    """True on the one process that writes the run folder's events, config and final outputs."""
    return rank() == 0


def launched() -> bool:
    """True in a rank started by engine/train/launch.py (it must not relaunch itself)."""
    return os.environ.get(LAUNCHED) == "1"


def launch_dir(run_dir: Path) -> Path:
    """<run>/launch: the launcher's config, the stop file and the per-rank records."""
    return Path(run_dir) / "launch"


def _dist():
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


def barrier() -> None:
    """Wait for every rank (nothing in a plain run)."""
    dist = _dist()
    if dist is not None:
        dist.barrier()


def any_rank(flag: bool) -> bool:
    """True on every rank when `flag` is true on any rank (one all-reduce; the flag itself in a plain run)."""
    dist = _dist()
    if dist is None:
        return flag
    import torch

    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    t = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


@contextmanager
def cpu_map_location():
    """torch.load with 'cpu' where a CPU rank asks for its device: accelerate names a gloo rank's device
    cpu:0, transformers loads a resumed optimizer state onto args.device, and torch.load cannot restore
    storages to "cpu:0". Only the map_location changes: the tensors land in the same memory."""
    import torch

    original = torch.load

    def load(*args, map_location=None, **kwargs):
        if isinstance(map_location, torch.device) and map_location.type == "cpu":
            map_location = "cpu"
        return original(*args, map_location=map_location, **kwargs)

    torch.load = load
    try:
        yield
    finally:
        torch.load = original


def gather_floats(value: float) -> Optional[list]:
    """`value` from every rank, in rank order, on every rank (None in a plain run: nothing to gather)."""
    dist = _dist()
    if dist is None:
        return None
    import torch

    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    mine = torch.tensor([float(value)], dtype=torch.float64, device=device)
    out = [torch.zeros_like(mine) for _ in range(dist.get_world_size())]
    dist.all_gather(out, mine)
    return [round(float(t.item()), 3) for t in out]


def make_stopper(run_dir: Path):
    """GracefulStop for a plain run; for N ranks, one that stops every rank after the same step."""
    from engine.train.callbacks import GracefulStop

    if world_size() == 1:
        return GracefulStop()

    class SharedStop(GracefulStop):
        """A stop asked on any rank, or by the launcher's stop file, stops all ranks after the same step."""

        def on_step_end(self, args, state, control, **kw):
            asked = self.requested or (launch_dir(run_dir) / STOP_FILE).exists()
            if any_rank(asked):
                self.requested = True
                control.should_save = True
                control.should_training_stop = True

    return SharedStop()


class RankRecord:
    """launch/rank-N.json: this rank's pid and how it ended, for the launcher's failure report.

    The non-main ranks' stderr (Python's and native code's) goes to launch/rank-N.log, so the
    terminal shows one progress stream and a dead rank's last words stay readable."""

    def __init__(self, run_dir: Path):
        self.dir = launch_dir(run_dir)
        self.path = self.dir / f"rank-{rank()}.json"

    def __enter__(self):
        self.dir.mkdir(parents=True, exist_ok=True)
        if not is_main():
            log = open(self.dir / f"rank-{rank()}.log", "a", encoding="utf-8")
            sys.stderr.flush()
            os.dup2(log.fileno(), 2)
            sys.stderr = os.fdopen(2, "w", buffering=1, encoding="utf-8", closefd=False)
        self._write("running", None)
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None or exc_type is SystemExit and not getattr(exc, "code", 0):
            self._write("ok", None)
        else:
            message = f"{exc_type.__name__}: {exc}".splitlines()[0][:500]
            self._write("error", message)
        return False

    def _write(self, status: str, message: Optional[str]) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"rank": rank(), "pid": os.getpid(), "status": status, "message": message,
                                   "time": time.time()}))
        tmp.replace(self.path)
