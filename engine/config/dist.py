"""The `dist` config section: training on more than one process (GPUs of one box, or nodes).

    engine train cfg.yaml dist.num_processes=2                     # DDP on 2 GPUs (or 2 CPU processes)
    engine train cfg.yaml dist.num_processes=4 dist.strategy=fsdp  # shard the weights over 4 GPUs
    engine train cfg.yaml dist.num_processes=2 --print-launch      # the command and launcher config

With num_processes > 1, `engine train` relaunches itself under `accelerate launch` (GPUs) or
`torch.distributed.run` (CPU, gloo) with a launcher config written into the run folder
(engine/train/launch.py). The help texts here are the documentation of every option.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Union

from engine.config.option import opt

STRATEGIES = {
    "ddp": "every process holds the whole model and a slice of each batch; gradients are averaged "
           "(PyTorch DistributedDataParallel). The default: fastest when the model fits on one GPU.",
    "fsdp": "weights, gradients and optimizer state are sharded over the GPUs (PyTorch FullyShardedDataParallel); "
            "for a model that does not fit on one GPU. QLoRA + FSDP shards a 4-bit base (bitsandbytes >= 0.43).",
    "deepspeed": "DeepSpeed ZeRO stage 2 (optimizer state and gradients sharded) or 3 (weights too), optionally "
                 "offloaded to CPU RAM; needs the [deepspeed] extra.",
}


@dataclass
class DistSettings:
    num_processes: Union[int, Literal["auto"]] = opt(
        1,
        "Training processes on this node: 1 = a plain single-process run; 'auto' = one per visible GPU "
        "(1 without a GPU); N > 1 relaunches `engine train` under accelerate (torchrun underneath). The "
        "effective batch is optim.batch_size x optim.grad_accum x num_processes x nnodes. On a CPU, N "
        "processes run DDP over gloo (for testing: they share the same cores).",
    )
    strategy: str = opt(
        "ddp",
        "How the processes share the work: " + " ".join(f"'{k}' = {v}" for k, v in STRATEGIES.items()),
        choices=list(STRATEGIES),
    )
    zero_stage: int = opt(
        2,
        "strategy=deepspeed: ZeRO stage 2 (optimizer state and gradients sharded, weights replicated) or 3 "
        "(weights sharded too; not with a 4-bit base).",
    )
    offload: bool = opt(
        False,
        "strategy=deepspeed or fsdp: keep optimizer state (ZeRO-3 / FSDP: and weights) in CPU RAM, moved to the "
        "GPU when needed. Fits larger models, trains slower.",
    )
    fsdp_sharding: str = opt(
        "full_shard",
        "strategy=fsdp: 'full_shard' (weights, gradients, optimizer state; ZeRO-3-like), 'shard_grad_op' "
        "(gradients and optimizer state; ZeRO-2-like) or 'hybrid_shard' (full shard inside a node, replicas "
        "across nodes).",
        choices=["full_shard", "shard_grad_op", "hybrid_shard"],
    )
    fsdp_state_dict: str = opt(
        "sharded",
        "strategy=fsdp: how checkpoints are written: 'sharded' (each process writes its shard: fast, resumes on "
        "the same number of processes) or 'full' (gathered on the main process: slower, one file set).",
        choices=["sharded", "full"],
    )
    nnodes: int = opt(1, "Machines in the run (multi-node: start the same command on each, with its node_rank).")
    node_rank: int = opt(0, "This machine's index among nnodes (0 = the main node, which writes the run folder).")
    main_address: str = opt("127.0.0.1", "Address of node 0, reachable from every node (multi-node runs).")
    main_port: int = opt(29500, "Free TCP port on node 0 for the processes to meet.")
