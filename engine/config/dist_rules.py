"""Rules of the `dist` section (engine/config/dist.py): combinations refused before anything loads.

What needs the machine (how many GPUs, whether there is one) is checked when the ranks are
launched (engine/train/launch_config.py: check_device_fit); what the config alone decides is here.
"""

from __future__ import annotations

import importlib.util
from typing import Optional

from engine.config.rules import rule

DEEPSPEED_PIP = "pip install 'edgetune[deepspeed]'"


@rule
def dist_counts(cfg) -> Optional[str]:
    d = cfg.dist
    if d.num_processes != "auto" and d.num_processes < 1:
        return f"dist.num_processes must be >= 1 or 'auto' (got {d.num_processes}); 1 = a plain single-process run."
    if d.nnodes < 1 or not 0 <= d.node_rank < d.nnodes:
        return (f"dist.node_rank must be in 0..dist.nnodes-1 (got node_rank={d.node_rank}, nnodes={d.nnodes}); "
                f"node 0 is the main node.")
    if not 0 < d.main_port < 65536:
        return f"dist.main_port must be a TCP port 1..65535 (got {d.main_port})."
    if d.nnodes > 1 and d.main_address in ("127.0.0.1", "localhost"):
        return (f"dist.nnodes={d.nnodes} needs dist.main_address set to node 0's address that every node can reach "
                f"(got {d.main_address}).")
    return None


@rule
def dist_strategy_fits(cfg) -> Optional[str]:
    """DeepSpeed installed; ZeRO-3 and FSDP only on bases they can shard; offload only where a strategy offloads."""
    from engine.train.methods import resolved_load_in

    d = cfg.dist
    load_in = resolved_load_in(cfg)
    if d.zero_stage not in (2, 3):
        return f"dist.zero_stage must be 2 or 3 (got {d.zero_stage}): 2 shards optimizer state and gradients, 3 weights too."
    if d.strategy == "deepspeed" and d.zero_stage == 3 and load_in in ("4bit", "8bit"):
        return (f"dist.zero_stage=3 cannot shard a {load_in} base (method={cfg.method}): DeepSpeed ZeRO-3 partitions "
                f"only 16/32-bit weights. Use dist.zero_stage=2, dist.strategy=fsdp (QLoRA + FSDP shards a 4-bit "
                f"base), or method=lora.")
    if d.strategy == "deepspeed" and importlib.util.find_spec("deepspeed") is None:
        return f"dist.strategy=deepspeed needs the DeepSpeed package: {DEEPSPEED_PIP} (or use dist.strategy=ddp/fsdp)."
    if d.strategy == "fsdp" and load_in == "8bit":
        return ("dist.strategy=fsdp cannot shard an 8-bit base (bitsandbytes int8 weights are not FSDP-shardable); "
                "use quant.load_in=4bit (QLoRA + FSDP) or none, or dist.strategy=ddp.")
    if d.offload and d.strategy == "ddp":
        return "dist.offload needs dist.strategy=deepspeed or fsdp (DDP keeps everything on each GPU); set dist.offload=false."
    return None
