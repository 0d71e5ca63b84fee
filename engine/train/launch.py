"""`engine train` with dist.num_processes > 1: relaunch this command as N ranks and watch them.

    engine train assets/presets/cpu_quickstart.yaml dist.num_processes=2           # 2 ranks (gloo on CPU)
    engine train cfg.yaml dist.num_processes=auto dist.strategy=fsdp --print-launch   # show, do not run

The launcher (this process) writes the resolved config and the launcher config into
<run>/launch/, starts `accelerate launch` (GPU) or `torch.distributed.run` (CPU) in a session of
its own, and waits. Each rank runs `engine train <run>/launch/config.yaml` with EDGETUNE_LAUNCHED=1,
so it trains instead of relaunching (engine/train/ranks.py says what each rank may write).

- Ctrl-C / SIGTERM here writes <run>/launch/STOP: every rank sees it after the same step (an
  all-reduce), saves one checkpoint and stops; a second Ctrl-C ends the ranks at once.
- A rank that fails ends the run: the launcher names the rank and its last message, in an `error`
  event (kind "rank") and on stderr; the checkpoints written so far stay resumable.
- An out-of-memory error on any rank is retried on all of them: the run is relaunched with half the
  micro-batch and twice the accumulation, resuming from the last checkpoint (an in-process retry
  cannot work here: the other ranks would wait in their collectives for a rank that restarted).
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Optional

from engine.errors import EdgetuneError
from engine.train import ranks
from engine.train.launch_config import LaunchPlan, launch_plan, visible_gpus

# messages a rank prints when a peer died: consequences, not the cause
PEER_LOST = ("connection closed", "connection reset", "broken pipe", "gloo", "nccl", "processgroup", "timed out",
             "timeout", "socket", "store", "rendezvous", "signal")


def wants_launch(cfg) -> bool:
    """True when this `engine train` must start N ranks instead of training itself."""
    if ranks.launched():
        return False
    n = cfg.dist.num_processes
    if n == "auto":
        return visible_gpus() > 1 or cfg.dist.nnodes > 1
    return int(n) > 1 or cfg.dist.nnodes > 1


def print_launch(cfg, resume=None, events=None) -> int:
    """--print-launch: the command and launcher config this run would use; nothing is started or written."""
    import yaml

    from engine.errors import ConfigError

    gpus = visible_gpus()
    if not gpus:  # printing for a cluster from a machine without GPUs: plan for one GPU per process there
        if cfg.dist.num_processes == "auto":
            raise ConfigError("--print-launch on a machine without GPUs needs dist.num_processes set to the GPUs per "
                              "node of the machine that will run it (e.g. dist.num_processes=8).")
        gpus = int(cfg.dist.num_processes)
        print(f"# no GPU visible here: the command below is for nodes with {gpus} GPUs each")
    plan = launch_plan(cfg, Path(cfg.output_dir), resume, events, progress=True, gpus=gpus)
    nodes = f" on each of {cfg.dist.nnodes} nodes (each with its dist.node_rank)" if cfg.dist.nnodes > 1 else ""
    print(f"# {plan.world_size} process(es), strategy {cfg.dist.strategy} on {plan.device}: what `engine train` runs"
          f"{nodes}, after writing the files below into the run folder (save them there to run it by hand)")
    if plan.accelerate and plan.device == "cuda":
        print(f"# {plan.config_path}:")
        print(yaml.safe_dump(plan.accelerate, sort_keys=False).rstrip())
    print(f"# {Path(cfg.output_dir) / 'launch' / 'config.yaml'}: this run's resolved config (every key=value applied)")
    print(f"EDGETUNE_LAUNCHED=1 {plan.shell()}")
    return 0


def run_launched(cfg, resume: Optional[str], events: Optional[str], progress: bool) -> int:
    """Start the ranks and wait; retry once per halving on out-of-memory. Returns the exit code."""
    while True:
        plan = _prepare(cfg, resume, events, progress)
        status = _supervise(plan, Path(cfg.output_dir))
        if status == "ok":
            return 0
        if status == "interrupted":
            print(f"stopped; resume with: engine train --resume {cfg.output_dir}", file=sys.stderr)
            return 130
        failed = root_cause(Path(cfg.output_dir), plan)
        retry = _oom_retry(cfg, failed)
        if retry is None:
            _report(cfg, events, failed)
            raise EdgetuneError(f"{describe(failed)}. Fix the cause, then continue with: engine train --resume {cfg.output_dir}")
        cfg, resume = retry, "latest" if _has_checkpoint(cfg) else None
        _emit(cfg, events, "oom", step=_last_step(cfg), batch_size=cfg.optim.batch_size, grad_accum=cfg.optim.grad_accum)
        print(f"out of memory on rank {failed['rank']}: relaunching every rank with batch_size={cfg.optim.batch_size} "
              f"grad_accum={cfg.optim.grad_accum}", file=sys.stderr)


def _prepare(cfg, resume, events, progress) -> LaunchPlan:
    import yaml

    from engine.config import save_config

    run_dir = Path(cfg.output_dir)
    plan = launch_plan(cfg, run_dir, resume, events, progress)
    launch = ranks.launch_dir(run_dir)
    launch.mkdir(parents=True, exist_ok=True)
    first = cfg.dist.node_rank * plan.processes_per_node  # this node's ranks (the folder may be shared by nodes)
    mine = range(first, first + plan.processes_per_node)
    old = [launch / f"rank-{r}.{ext}" for r in mine for ext in ("json", "log")]
    for path in [launch / ranks.STOP_FILE, *old]:
        path.unlink(missing_ok=True)  # records of an earlier launch would be mistaken for this one's
    save_config(cfg, launch / "config.yaml")
    if plan.config_path:
        Path(plan.config_path).write_text(yaml.safe_dump(plan.accelerate, sort_keys=False))
    (launch / "command.sh").write_text("#!/bin/sh\n# what `engine train` ran for this node\n"
                                       f"EDGETUNE_LAUNCHED=1 {plan.shell()}\n")
    return plan


def _supervise(plan: LaunchPlan, run_dir: Path) -> str:
    """Run the launcher command to its end: 'ok', 'interrupted' or 'failed'."""
    launch = ranks.launch_dir(run_dir)
    env = dict(os.environ, **{ranks.LAUNCHED: "1"})
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // plan.processes_per_node)))
    # a session of its own: a terminal's Ctrl-C reaches only this process, which asks for a clean stop
    proc = subprocess.Popen(plan.command, env=env, start_new_session=True)
    stops = []

    def on_signal(signum, frame):
        stops.append(signum)
        if len(stops) == 1:
            (launch / ranks.STOP_FILE).write_text("stop\n")
            print("\nstopping every rank after this step; saving a checkpoint (Ctrl-C again to abort)", file=sys.stderr)
        else:
            _kill_group(proc, signal.SIGTERM)

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        rc = proc.wait()
    except BaseException:
        _kill_group(proc, signal.SIGKILL)
        raise
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        _reap(proc)
    if rc == 0:
        return "interrupted" if stops else "ok"
    return "failed"


def _kill_group(proc, sig) -> None:
    try:
        os.killpg(proc.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _reap(proc) -> None:
    """Nothing left running: the ranks are in the launcher's process group."""
    if proc.poll() is None:
        _kill_group(proc, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            _kill_group(proc, signal.SIGKILL)
            proc.wait()
    _kill_group(proc, signal.SIGKILL)  # ranks orphaned by their agent


def _records(run_dir: Path) -> dict[int, dict]:
    out = {}
    for p in ranks.launch_dir(run_dir).glob("rank-*.json"):
        try:
            rec = json.loads(p.read_text())
            out[int(rec["rank"])] = rec
        except (ValueError, KeyError, OSError):
            continue
    return out


def _last_log_line(run_dir: Path, rank: int) -> Optional[str]:
    log = ranks.launch_dir(run_dir) / f"rank-{rank}.log"
    if not log.is_file():
        return None
    lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
    return lines[-1][:300] if lines else None


def root_cause(run_dir: Path, plan: LaunchPlan) -> dict:
    """The rank whose failure ended the run, and its last message.

    A rank that raised an error of its own (not a lost peer) is the cause, the earliest first; else
    a rank that vanished without recording an end (killed, out of host memory); else the earliest error."""
    recs = _records(run_dir)
    first = int(plan.accelerate.get("machine_rank", 0) or 0) * plan.processes_per_node
    expected = range(first, first + plan.processes_per_node)
    errors = sorted((r for r in recs.values() if r.get("status") == "error"), key=lambda r: r.get("time", 0))
    own = [r for r in errors if not any(p in (r.get("message") or "").lower() for p in PEER_LOST)]
    if own:
        return {"rank": own[0]["rank"], "message": own[0]["message"], "how": "error"}
    vanished = [r for r in expected if recs.get(r, {}).get("status", "running") == "running"]
    if vanished:
        r = vanished[0]
        last = _last_log_line(run_dir, r)
        started = r in recs
        msg = ("died without an error (killed by a signal, or the system ran out of memory)" if started
               else "never started (see the launcher's output above)")
        return {"rank": r, "message": msg + (f"; its last message: {last}" if last else ""), "how": "died"}
    if errors:
        return {"rank": errors[0]["rank"], "message": errors[0]["message"], "how": "error"}
    return {"rank": first, "message": "the launcher failed before any rank recorded its state (see its output above)",
            "how": "launcher"}


def _oom_retry(cfg, failed: dict):
    """The config to relaunch with after an out-of-memory error on any rank, or None (not OOM, or batch 1)."""
    msg = (failed.get("message") or "").lower()
    if failed.get("how") != "error" or "out of memory" not in msg and "outofmemoryerror" not in msg:
        return None
    batch = cfg.optim.batch_size if cfg.optim.batch_size != "auto" else _planned_batch(cfg)
    if not batch or batch <= 1:
        return None
    optim = dataclasses.replace(cfg.optim, batch_size=batch // 2, grad_accum=cfg.optim.grad_accum * 2)
    return dataclasses.replace(cfg, optim=optim)


def _planned_batch(cfg) -> Optional[int]:
    from engine.events import read_events

    plans = [e for e in read_events(Path(cfg.output_dir) / "events.jsonl") if e["type"] == "plan"]
    return plans[-1].get("batch_size") if plans else None


def _last_step(cfg) -> int:
    from engine.train import checkpoints as ckpt

    latest = ckpt.latest_checkpoint(Path(cfg.output_dir))
    return int(latest.name.split("-")[1]) if latest else 0


def _has_checkpoint(cfg) -> bool:
    return _last_step(cfg) > 0


def _emit(cfg, events: Optional[str], type: str, **fields) -> None:
    """An event from the launcher, appended to the run's events.jsonl (and --events) after the ranks ended."""
    from engine.events import EventSink, open_events_target

    sink = EventSink(open_events_target(events) if events else [])
    sink.add_file(Path(cfg.output_dir) / "events.jsonl")
    try:
        sink.emit(type, **fields)
    finally:
        sink.close()


def _report(cfg, events: Optional[str], failed: dict) -> None:
    from engine.events import read_events

    hint = ("fix the cause named in the message, then continue with: engine train --resume "
            f"{cfg.output_dir} (the other ranks' logs: {ranks.launch_dir(Path(cfg.output_dir))}/rank-N.log)")
    _emit(cfg, events, "error", kind="rank", rank=failed["rank"], message=describe(failed), hint=hint)
    done = [e for e in read_events(Path(cfg.output_dir) / "events.jsonl") if e["type"] in ("run_started", "run_finished")]
    if not done or done[-1]["type"] != "run_finished":
        from engine.train import checkpoints as ckpt

        latest = ckpt.latest_checkpoint(Path(cfg.output_dir))
        _emit(cfg, events, "run_finished", status="failed", step=_last_step(cfg),
              paths={"run_dir": str(cfg.output_dir), "last_checkpoint": str(latest) if latest else None},
              metrics={"seconds": None})


def describe(failed: dict) -> str:
    """'rank 1 died without an error ...' / 'rank 1 failed: ValueError: ...'."""
    sep = " " if failed["how"] == "died" else " failed: "
    return f"rank {failed['rank']}{sep}{failed['message']}"
