"""More than one process: the dist config, the launcher config, and real 2-rank DDP runs on CPU (gloo).

The multi-process runs are marked slow (about a minute and a half together on 2 CPU cores): a 2-rank
run with micro-batch b equals a 1-rank run with micro-batch 2b (same losses, same adapter), a stop on
the launcher checkpoints every rank and the run resumes (and refuses a different process count),
and a rank killed mid-run ends the run with an error naming it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from engine.config import load_config
from engine.errors import ConfigError
from engine.events import read_events
from engine.train import launch, ranks
from engine.train.launch_config import LaunchPlan, launch_plan
from tests.conftest import REPO, write_jsonl
from tests.engine.run_helpers import train

TOY = [{"instruction": f"Say the code for item {i}.", "output": f"Code {i}{i}{i}."} for i in range(8)]
COMMON = ["method=lora", "max_len=64", "lr=3e-3", "optim.warmup_ratio=0", "lora.dropout=0", "train.backend=hf",
          "quant.compute_dtype=fp32"]


def cli_args(model, data, out, *extra) -> list[str]:
    return [f"model={model}", f"data={data}", f"output_dir={out}", *COMMON, *extra]


def engine_train(args: list[str], **kw) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop(ranks.LAUNCHED, None)
    return subprocess.run([sys.executable, "-m", "engine", "train", *args, "--no-progress"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=240, **kw)


def start_engine_train(args: list[str]) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop(ranks.LAUNCHED, None)
    return subprocess.Popen([sys.executable, "-m", "engine", "train", *args, "--no-progress"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(predicate, proc: subprocess.Popen, timeout: float = 150.0) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return
        if proc.poll() is not None:
            raise AssertionError(f"the run ended early (exit {proc.returncode}): {proc.stderr.read()[-2000:]}")
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("timed out waiting for the run")


def steps_logged(run_dir: Path) -> int:
    path = run_dir / "events.jsonl"
    return sum(e["type"] == "step" for e in read_events(path)) if path.is_file() else 0


@pytest.fixture
def toy_data(tmp_path):
    return write_jsonl(tmp_path / "toy.jsonl", TOY)


# -- config and launcher config (fast) ------------------------------------------------------------------

def test_zero3_with_a_4bit_base_is_refused_naming_the_key():
    with pytest.raises(ConfigError, match=r"dist.zero_stage=3 cannot shard a 4bit base \(method=qlora\)"):
        load_config(None, ["method=qlora", "dist.strategy=deepspeed", "dist.zero_stage=3"])


@pytest.mark.parametrize("override, words", [
    ("dist.num_processes=0", "dist.num_processes must be >= 1"),
    ("dist.zero_stage=4", "dist.zero_stage must be 2 or 3"),
    ("dist.offload=true", "dist.offload needs dist.strategy=deepspeed or fsdp"),
    ("dist.nnodes=2", "needs dist.main_address"),
    ("dist.node_rank=1", "dist.node_rank must be in 0..dist.nnodes-1"),
])
def test_impossible_dist_settings_are_refused(override, words):
    with pytest.raises(ConfigError, match=words.replace(".", r"\.")):
        load_config(None, [override])


def test_deepspeed_missing_names_the_pip_command():
    import importlib.util

    if importlib.util.find_spec("deepspeed") is not None:
        pytest.skip("deepspeed is installed")
    with pytest.raises(ConfigError, match=r"pip install 'edgetune\[deepspeed\]'"):
        load_config(None, ["dist.strategy=deepspeed", "dist.num_processes=2"])


def test_device_fit_refuses_more_processes_than_gpus_and_fsdp_on_cpu(tmp_path):
    cfg = load_config(None, ["dist.num_processes=4", f"output_dir={tmp_path}"])
    with pytest.raises(ConfigError, match=r"dist.num_processes=4 but this node has 2 visible GPU"):
        launch_plan(cfg, tmp_path, gpus=2)
    cfg = load_config(None, ["dist.num_processes=2", "dist.strategy=fsdp", f"output_dir={tmp_path}"])
    with pytest.raises(ConfigError, match=r"dist.strategy=fsdp needs CUDA GPUs"):
        launch_plan(cfg, tmp_path, gpus=0)


@pytest.mark.parametrize("strategy", ["ddp", "fsdp", "deepspeed"])
def test_generated_accelerate_config_is_read_by_accelerate(strategy, tmp_path):
    """The config written for each strategy passes accelerate's own parser and launch-argument validation."""
    from accelerate.commands.config.config_args import ClusterConfig
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser

    cfg = load_config(None, ["dist.num_processes=2", f"output_dir={tmp_path}", "method=lora"])
    # strategy set after validation: the deepspeed package rule is tested above; here the generated file is
    cfg = dataclasses.replace(cfg, dist=dataclasses.replace(cfg.dist, strategy=strategy, zero_stage=3, offload=True))
    plan = launch_plan(cfg, tmp_path, gpus=2)
    assert plan.command[1:3] == ["-m", "accelerate.commands.launch"] and plan.world_size == 2
    Path(plan.config_path).parent.mkdir(parents=True)
    Path(plan.config_path).write_text(yaml.safe_dump(plan.accelerate))
    ClusterConfig.from_yaml_file(plan.config_path)
    args = launch_command_parser().parse_args(plan.command[plan.command.index("--config_file"):])
    args, _, _ = _validate_launch_command(args)
    assert args.num_processes == 2 and args.module and args.training_script == "engine"
    assert args.training_script_args[:2] == ["train", str(tmp_path / "launch" / "config.yaml")]
    if strategy == "ddp":
        assert args.multi_gpu and not args.use_fsdp and not args.use_deepspeed
    if strategy == "fsdp":
        assert args.use_fsdp and args.fsdp_sharding_strategy == "FULL_SHARD" and args.fsdp_offload_params
        assert args.fsdp_use_orig_params  # LoRA: frozen and trainable weights in one flat parameter
    if strategy == "deepspeed":
        assert args.use_deepspeed and args.zero_stage == 3 and args.offload_param_device == "cpu"


def test_print_launch_shows_the_command_and_writes_nothing(tmp_path):
    out = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop(ranks.LAUNCHED, None)
    res = subprocess.run([sys.executable, "-m", "engine", "train", f"output_dir={out}", "dist.num_processes=2",
                          "dist.strategy=fsdp", "--print-launch"], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 0, res.stderr
    assert "EDGETUNE_LAUNCHED=1" in res.stdout and "accelerate.commands.launch --config_file" in res.stdout
    assert "distributed_type: FSDP" in res.stdout and "num_processes: 2" in res.stdout  # a cluster's GPUs, even here
    assert f"{out}/launch/config.yaml" in res.stdout
    assert not out.exists()


def test_root_cause_prefers_a_rank_own_error_then_a_vanished_rank(tmp_path):
    launch_dir = tmp_path / "launch"
    launch_dir.mkdir()
    plan = LaunchPlan(["x"], "cpu", 2, {"num_machines": 1})

    def record(rank, status, message, t):
        (launch_dir / f"rank-{rank}.json").write_text(json.dumps(
            {"rank": rank, "pid": 1, "status": status, "message": message, "time": t}))

    record(0, "error", "RuntimeError: Connection closed by peer [127.0.0.1]:1234", 1.0)
    record(1, "running", None, 0.5)
    (launch_dir / "rank-1.log").write_text("loading\nstep 3 of 40\n")
    failed = launch.root_cause(tmp_path, plan)
    assert failed["rank"] == 1 and "died without an error" in failed["message"] and "step 3 of 40" in failed["message"]
    record(1, "error", "ValueError: bad record in toy.jsonl:3", 2.0)
    failed = launch.root_cause(tmp_path, plan)
    assert failed == {"rank": 1, "message": "ValueError: bad record in toy.jsonl:3", "how": "error"}
    assert launch.describe(failed) == "rank 1 failed: ValueError: bad record in toy.jsonl:3"


def test_oom_on_a_rank_relaunches_all_with_half_the_batch():
    cfg = load_config(None, ["batch_size=8", "grad_accum=2", "dist.num_processes=2"])
    retry = launch._oom_retry(cfg, {"rank": 1, "message": "OutOfMemoryError: CUDA out of memory", "how": "error"})
    assert (retry.optim.batch_size, retry.optim.grad_accum) == (4, 4)
    assert launch._oom_retry(cfg, {"rank": 1, "message": "ValueError: x", "how": "error"}) is None
    died = {"rank": 1, "message": "died without an error (killed by a signal, or the system ran out of memory)",
            "how": "died"}
    assert launch._oom_retry(cfg, died) is None  # a vanished rank is not an OOM error
    one = load_config(None, ["batch_size=1", "dist.num_processes=2"])
    assert launch._oom_retry(one, {"rank": 0, "message": "out of memory", "how": "error"}) is None


# -- real runs with two ranks (gloo on CPU) ------------------------------------------------------------

@pytest.mark.slow
def test_two_ranks_equal_one_rank_with_twice_the_batch(tiny_model_dir, toy_data, tmp_path):
    from safetensors.torch import load_file

    one, _, _ = train(load_config(None, cli_args(tiny_model_dir, toy_data, tmp_path / "one", "batch_size=4", "max_steps=3")))
    res = engine_train(cli_args(tiny_model_dir, toy_data, tmp_path / "two", "batch_size=2", "max_steps=3",
                                "dist.num_processes=2"))
    assert res.returncode == 0, res.stderr[-3000:]
    two = tmp_path / "two"
    events = read_events(two / "events.jsonl")
    started = [e for e in events if e["type"] == "run_started"]
    assert len(started) == 1 and started[0]["processes"] == 2 and started[0]["effective_batch"] == 4  # one stream
    assert [e["type"] for e in events].count("run_finished") == 1
    steps = [e for e in events if e["type"] == "step"]
    assert all(len(e["rank_memory_gb"]) == 2 and e["rank_memory_gb"][0] == e["peak_memory_gb"] for e in steps)
    losses_one = [e["loss"] for e in read_events(tmp_path / "one" / "events.jsonl") if e["type"] == "step"]
    losses_two = [e["loss"] for e in events if e["type"] == "step"]
    assert losses_two == pytest.approx(losses_one, rel=1e-5)
    a = load_file(str(tmp_path / "one" / "adapter" / "adapter_model.safetensors"))
    b = load_file(str(two / "adapter" / "adapter_model.safetensors"))
    assert a.keys() == b.keys()
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-5
    assert any("lora_B" in k and b[k].abs().max() > 0 for k in b)  # it trained (B starts at zero)
    cp = two / "checkpoints" / "step-3"
    assert (cp / "rng_state_0.pth").is_file() and (cp / "rng_state_1.pth").is_file()  # every rank saved its part
    assert not (two / "checkpoints" / ".staging").exists()
    assert json.loads((two / "fingerprint.json").read_text())["processes"] == 2
    assert {json.loads(p.read_text())["status"] for p in (two / "launch").glob("rank-*.json")} == {"ok"}


@pytest.mark.slow
def test_stop_on_the_launcher_checkpoints_every_rank_and_resumes(tiny_model_dir, toy_data, tmp_path):
    out = tmp_path / "run"
    args = cli_args(tiny_model_dir, toy_data, out, "batch_size=2", "max_steps=40", "dist.num_processes=2")
    proc = start_engine_train(args)
    wait_for(lambda: steps_logged(out) >= 2, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert "resume with: engine train --resume" in err
    events = read_events(out / "events.jsonl")
    finished = [e for e in events if e["type"] == "run_finished"]
    assert len(finished) == 1 and finished[0]["status"] == "interrupted"
    stopped_at = finished[0]["step"]
    assert 2 <= stopped_at < 40 and (out / "checkpoints" / f"step-{stopped_at}" / "rng_state_1.pth").is_file()

    refused = engine_train(["--resume", str(out), "dist.num_processes=1"])
    assert refused.returncode != 0 and "processes: 2 -> 1" in refused.stderr

    res = engine_train(["--resume", str(out)])
    assert res.returncode == 0, res.stderr[-3000:]
    events = read_events(out / "events.jsonl")
    started = [e for e in events if e["type"] == "run_started"]
    assert started[-1]["resumed_from"].endswith(f"step-{stopped_at}")
    assert [e for e in events if e["type"] == "run_finished"][-1]["status"] == "completed"
    assert [e["step"] for e in events if e["type"] == "step"][-1] == 40
    assert (out / "adapter" / "adapter_model.safetensors").is_file()


@pytest.mark.slow
def test_a_killed_rank_ends_the_run_naming_it(tiny_model_dir, toy_data, tmp_path):
    out = tmp_path / "run"
    proc = start_engine_train(cli_args(tiny_model_dir, toy_data, out, "batch_size=2", "max_steps=400",
                                       "dist.num_processes=2"))
    wait_for(lambda: steps_logged(out) >= 1, proc)
    pid = json.loads((out / "launch" / "rank-1.json").read_text())["pid"]
    os.kill(pid, signal.SIGKILL)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode not in (0, 130), err[-3000:]
    assert "rank 1 died without an error" in err
    errors = [e for e in read_events(out / "events.jsonl") if e["type"] == "error" and e["kind"] == "rank"]
    assert len(errors) == 1 and errors[0]["rank"] == 1 and "--resume" in errors[0]["hint"]
    finished = [e for e in read_events(out / "events.jsonl") if e["type"] == "run_finished"]
    assert len(finished) == 1 and finished[0]["status"] == "failed"


# -- the planner per GPU (fast, no torch) --------------------------------------------------------------

def test_plan_per_gpu_ddp_replicates_and_fsdp_shards():
    from engine.plan.sharding import STRATEGIES, per_gpu

    parts = {"base weights": 8.0, "adapter weights": 0.2, "gradients": 0.2, "optimizer state": 0.4,
             "activations": 2.0, "logits and loss": 1.0, "framework overhead": 0.6}
    single = sum(parts.values())
    by = {s.name: s for s in STRATEGIES}
    assert per_gpu(parts, 32, 2, by["ddp"]) == (pytest.approx(single + 0.2), 0.0)  # + DDP's gradient buckets
    assert per_gpu(parts, 32, 2, by["zero2"])[0] == pytest.approx(single - 0.1 - 0.2)  # grads and optimizer halved
    fsdp, _ = per_gpu(parts, 32, 4, by["fsdp"])
    assert fsdp == pytest.approx(3.6 + 8.2 / 4 + 2 * 8.2 / 32 + 0.6 / 4)
    gpu, cpu = per_gpu(parts, 32, 4, by["fsdp+offload"])
    assert cpu == pytest.approx(8.2 + 0.4) and gpu < fsdp


def test_engine_plan_gpus_answers_two_12gb_cards():
    env = dict(os.environ, PYTHONPATH=str(REPO))
    res = subprocess.run([sys.executable, "-m", "engine", "plan", "assets/presets/gpu_8b_qlora.yaml", "dist.strategy=fsdp", "--gpu", "RTX 3060",
                          "--gpus", "2", "--json"], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    rows = {r["strategy"]: r for r in json.loads(res.stdout)["per_gpu"]}
    assert rows["fsdp"]["chosen"] and rows["fsdp"]["gpus"] == 2 and rows["fsdp"]["per_gpu_gb"] < rows["ddp"]["per_gpu_gb"]
    assert "torch" not in res.stderr
