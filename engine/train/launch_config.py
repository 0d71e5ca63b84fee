"""The launcher configuration for N processes, generated from the run config's `dist` section.

    engine train cfg.yaml dist.num_processes=2 --print-launch

Nothing here starts a process: `launch_plan(cfg, ...)` returns the exact command line and the
accelerate config (a dict written to <run>/launch/accelerate.yaml), so `--print-launch` shows
what would run and a user can reuse it on a cluster. On GPUs the command is `accelerate launch`
with that config (DDP = MULTI_GPU, FSDP, DEEPSPEED); on a CPU it is `torch.distributed.run`
(torchrun) with DDP over gloo, because accelerate launches more than one CPU process only
through MPI. torchrun is what accelerate itself runs underneath, so both paths start the same
ranks with the same environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT).
"""

from __future__ import annotations

import shlex
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import ConfigError

# dist.strategy -> accelerate's distributed_type
DISTRIBUTED_TYPE = {"ddp": "MULTI_GPU", "fsdp": "FSDP", "deepspeed": "DEEPSPEED"}
FSDP_SHARDING = {"full_shard": "FULL_SHARD", "shard_grad_op": "SHARD_GRAD_OP", "hybrid_shard": "HYBRID_SHARD"}


@dataclass
class LaunchPlan:
    """What `engine train` runs for N processes: the command, its launcher config and where it goes."""

    command: list[str]
    device: str  # cuda | cpu
    processes_per_node: int
    accelerate: dict = field(default_factory=dict)  # empty for the torchrun (CPU) path
    config_path: str = ""  # <run>/launch/accelerate.yaml (GPU path)

    @property
    def world_size(self) -> int:
        return self.processes_per_node * int(self.accelerate.get("num_machines", 1) or 1)

    def shell(self) -> str:
        """The command as a shell line."""
        return " ".join(shlex.quote(c) for c in self.command)


def visible_gpus() -> int:
    """CUDA devices this process can see (0 without torch.cuda)."""
    try:
        import torch

        return torch.cuda.device_count() if torch.cuda.is_available() else 0
    except Exception:
        return 0


def processes_per_node(cfg, gpus: int) -> int:
    """dist.num_processes resolved: 'auto' = one per visible GPU (1 without a GPU)."""
    n = cfg.dist.num_processes
    return max(1, gpus) if n == "auto" else int(n)


def check_device_fit(cfg, n: int, gpus: int) -> None:
    """Refuse what cannot run on this machine, naming the key: more processes than GPUs, FSDP/DeepSpeed on CPU."""
    d = cfg.dist
    if gpus and n > gpus:
        raise ConfigError(f"dist.num_processes={n} but this node has {gpus} visible GPU(s); each process needs its "
                          f"own GPU. Set dist.num_processes={gpus} (or auto), or CUDA_VISIBLE_DEVICES to the GPUs to use.")
    if not gpus and d.strategy != "ddp":
        raise ConfigError(f"dist.strategy={d.strategy} needs CUDA GPUs: accelerate builds {d.strategy.upper()} "
                          f"only on GPUs. On a CPU, use dist.strategy=ddp (gloo), or run on a GPU machine.")


def free_port() -> int:
    """A TCP port nothing listens on now (single-node runs: two runs on one box must not collide)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def accelerate_config(cfg, n: int, port: int) -> dict:
    """The accelerate config for dist.strategy (what `accelerate config` would write)."""
    d = cfg.dist
    conf = {
        "compute_environment": "LOCAL_MACHINE", "distributed_type": DISTRIBUTED_TYPE[d.strategy],
        "num_machines": d.nnodes, "machine_rank": d.node_rank, "num_processes": n * d.nnodes,
        "main_process_ip": d.main_address, "main_process_port": port, "rdzv_backend": "static",
        "same_network": True, "gpu_ids": "all", "use_cpu": False,
        # TrainingArguments sets bf16/fp16 from quant.compute_dtype; the launcher leaves it alone
        "mixed_precision": "no", "downcast_bf16": "no",
    }
    if d.strategy == "fsdp":
        conf["fsdp_config"] = {
            "fsdp_version": 1, "fsdp_sharding_strategy": FSDP_SHARDING[d.fsdp_sharding],
            "fsdp_auto_wrap_policy": "TRANSFORMER_BASED_WRAP", "fsdp_backward_prefetch": "BACKWARD_PRE",
            "fsdp_state_dict_type": "SHARDED_STATE_DICT" if d.fsdp_state_dict == "sharded" else "FULL_STATE_DICT",
            "fsdp_offload_params": d.offload, "fsdp_cpu_ram_efficient_loading": True,
            "fsdp_sync_module_states": True,
            "fsdp_use_orig_params": True,  # LoRA: frozen and trainable weights share a flat parameter
            "fsdp_activation_checkpointing": False,  # the backend already applies gradient checkpointing
        }
    if d.strategy == "deepspeed":
        conf["deepspeed_config"] = deepspeed_config(cfg)
    return conf


def deepspeed_config(cfg) -> dict:
    """The accelerate DeepSpeed plugin settings for ZeRO stage 2/3 with optional CPU offload."""
    d = cfg.dist
    conf = {
        "zero_stage": d.zero_stage, "gradient_accumulation_steps": cfg.optim.grad_accum,
        "gradient_clipping": cfg.optim.max_grad_norm or 1.0,
        "offload_optimizer_device": "cpu" if d.offload else "none",
        "deepspeed_multinode_launcher": "standard",
    }
    if d.zero_stage == 3:
        conf.update(offload_param_device="cpu" if d.offload else "none", zero3_init_flag=False,
                    zero3_save_16bit_model=True)
    return conf


def rank_args(config_path: str, resume, events, progress: bool) -> list[str]:
    """`engine train` arguments every rank runs: the resolved config the launcher wrote, never dist overrides."""
    args = ["-m", "engine", "train", config_path]
    if resume:
        args += ["--resume", resume]
    if events:
        args += ["--events", events]
    if not progress:
        args.append("--no-progress")
    return args


def launch_plan(cfg, run_dir: Path, resume=None, events=None, progress=False, gpus=None) -> LaunchPlan:
    """The command that starts every rank of this node, and its accelerate config (GPU path)."""
    gpus = visible_gpus() if gpus is None else gpus
    n = processes_per_node(cfg, gpus)
    check_device_fit(cfg, n, gpus)
    d = cfg.dist
    single = d.nnodes == 1
    # one node: any free port (two runs on one box must not collide); several: the agreed one
    port = free_port() if single and d.main_port == 29500 else d.main_port
    launch = Path(run_dir) / "launch"
    rank_cmd = rank_args(str(launch / "config.yaml"), resume, events, progress)
    if gpus:
        conf = accelerate_config(cfg, n, port)
        path = str(launch / "accelerate.yaml")
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", path] + rank_cmd
        return LaunchPlan(cmd, "cuda", n, conf, path)
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nnodes={d.nnodes}", f"--node_rank={d.node_rank}",
           f"--nproc_per_node={n}", f"--master_addr={d.main_address}", f"--master_port={port}"] + rank_cmd
    conf = {"num_machines": d.nnodes}
    return LaunchPlan(cmd, "cpu", n, conf)
