"""Memory per GPU when N processes train together: DDP replicates, FSDP / ZeRO shard.

    engine plan assets/presets/gpu_8b_qlora.yaml --gpu "RTX 3060" --gpus 2

Starts from the single-device plan (estimate.py's named parts) and says, for each strategy,
which parts every GPU still holds whole, which are split N ways and which move to CPU RAM:

  part                         ddp      zero2 / fsdp shard_grad_op   zero3 / fsdp full_shard   + offload
  weights (base, adapter, ref)  whole   whole                        1/N + 2 gathered layers    CPU (zero3/fsdp)
  gradients                     whole   1/N                          1/N                        -
  optimizer state               whole   1/N                          1/N                        CPU
  activations, logits, context  whole   whole                        whole                      -

DDP also keeps its all-reduce buckets: a second copy of the gradients (PyTorch DDP's default,
gradient_as_bucket_view=False). ZeRO-3 and FSDP full_shard gather one layer's weights at a time
and prefetch the next, hence two layers' worth on top of the shard. Each process also needs
its own CUDA context, already counted in the framework overhead part. No torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

WEIGHTS = ("base weights", "16-bit weight copies", "adapter weights", "reference model", "checkpoint file pages")
GRADIENTS = ("gradients",)
OPTIMIZER = ("optimizer state",)


@dataclass(frozen=True)
class Strategy:
    """How one strategy places the parts: 'whole', 'shard' or 'cpu' for weights, gradients, optimizer state."""

    name: str  # the row label
    config: str  # the dist.* settings that choose it
    weights: str
    gradients: str
    optimizer: str
    buckets: bool = False  # DDP's all-reduce buckets: a second copy of the gradients


STRATEGIES = [
    Strategy("ddp", "dist.strategy=ddp", "whole", "whole", "whole", buckets=True),
    Strategy("zero2", "dist.strategy=deepspeed dist.zero_stage=2 (or fsdp shard_grad_op)", "whole", "shard", "shard"),
    Strategy("zero2+offload", "dist.strategy=deepspeed dist.zero_stage=2 dist.offload=true", "whole", "shard", "cpu"),
    Strategy("fsdp", "dist.strategy=fsdp (full_shard; ZeRO-3 alike on a 16-bit base)", "shard", "shard", "shard"),
    Strategy("fsdp+offload", "dist.strategy=fsdp dist.offload=true (or ZeRO-3 with offload)", "cpu", "shard", "cpu"),
]


@dataclass
class DevicePlan:
    """One strategy's memory on each of N GPUs (and in CPU RAM, for offload)."""

    strategy: str
    config: str
    gpus: int
    per_gpu_gb: float
    cpu_gb: float
    fits: bool
    chosen: bool

    def to_dict(self) -> dict:
        return asdict(self)


def per_gpu(breakdown: dict[str, float], layers: int, n: int, s: Strategy) -> tuple[float, float]:
    """(GB on each GPU, GB of CPU RAM) for strategy `s` over `n` GPUs, from a single-device breakdown."""
    gpu = cpu = 0.0
    weights = sum(breakdown.get(k, 0.0) for k in WEIGHTS)
    for name, gb in breakdown.items():
        if name in WEIGHTS:
            continue
        how = s.gradients if name in GRADIENTS else s.optimizer if name in OPTIMIZER else "whole"
        if how == "shard":
            gpu += gb / n
        elif how == "cpu":
            cpu += gb
        else:
            gpu += gb
    gathered = 2 * weights / max(1, layers)  # the layer being computed and the one prefetched
    if s.weights == "shard":
        gpu += weights / n + gathered
    elif s.weights == "cpu":
        gpu += gathered
        cpu += weights
    else:
        gpu += weights
    if s.buckets:
        gpu += sum(breakdown.get(k, 0.0) for k in GRADIENTS)
    return gpu, cpu


def chosen_name(dist) -> str:
    """The row of STRATEGIES that a config's dist section selects."""
    if dist.strategy == "ddp":
        return "ddp"
    if dist.strategy == "deepspeed":
        base = "zero2" if dist.zero_stage == 2 else "fsdp"
    else:
        base = "zero2" if dist.fsdp_sharding == "shard_grad_op" else "fsdp"
    return base + ("+offload" if dist.offload else "")


def device_plans(plan, layers: int, n: int, dist) -> list[DevicePlan]:
    """Every strategy's per-GPU memory for `plan` (a MemoryPlan of one device) over n GPUs."""
    chosen = chosen_name(dist)
    rows = []
    for s in STRATEGIES:
        gpu, cpu = per_gpu(plan.breakdown, layers, n, s)
        rows.append(DevicePlan(s.name, s.config, n, round(gpu, 3), round(cpu, 3), gpu <= plan.memory_gb, s.name == chosen))
    return rows


def format_device_plans(rows: list[DevicePlan], memory_gb: float, target: str) -> str:
    """The table `engine plan --gpus N` prints after the single-device plan."""
    n = rows[0].gpus
    lines = ["", f"on {n} x {target} ({memory_gb:.1f} GB each), per GPU:"]
    for r in rows:
        mark = "*" if r.chosen else " "
        cpu = f" + {r.cpu_gb:.1f} GB CPU RAM" if r.cpu_gb else ""
        verdict = "fits" if r.fits else "DOES NOT FIT"
        lines.append(f" {mark} {r.strategy:<14} {r.per_gpu_gb:7.2f} GB{cpu:<22} {verdict:<13} {r.config}")
    lines.append("   (* = this config's dist section; every process also holds its micro-batch's activations)")
    return "\n".join(lines)
