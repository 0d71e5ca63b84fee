"""The plan as text for `engine plan`; the last line is always `total: X.X GB`."""

from __future__ import annotations

from engine.plan.planner import MemoryPlan


def _params(n: int) -> str:
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M"


def _vision_lines(plan: MemoryPlan) -> list[str]:
    """What a VLM is made of, and what its images cost in tokens (they count towards max_len)."""
    v = plan.vision
    if not v:
        return []
    trains = " and ".join(v["trains"]) + " train" if v["trains"] else "frozen"
    crops = f" ({v['crops_per_image']} crops)" if v["crops_per_image"] > 1 else ""
    return [f"vision:   encoder {_params(v['encoder_params'])} + projector {_params(v['projector_params'])} params "
            f"(16-bit, {trains}), LM {_params(v['language_params'])}; {v['tokens_per_image']} image tokens per image{crops}, "
            f"up to {v['images_per_record']} image(s) per record, counted in max_len"]


def format_plan(plan: MemoryPlan) -> str:
    """Header, breakdown table, verdict, advice, then `total: X.X GB`."""
    ckpt = "on" if plan.gradient_checkpointing else "off"
    lines = [
        f"model:    {plan.model} ({_params(plan.total_params)} params; shape from {plan.model_source})",
        f"method:   {plan.method} (stage {plan.stage}), backend {plan.backend}, compute {plan.compute_dtype}, "
        f"{_params(plan.trainable_params)} trainable",
        *_vision_lines(plan),
        f"device:   {plan.target} [{plan.device}, {plan.memory_gb:.1f} GB]",
        f"run:      micro-batch {plan.batch_size} x grad_accum {plan.grad_accum}, max_len {plan.max_len}, "
        f"gradient checkpointing {ckpt}",
        "",
    ]
    width = max(len(k) for k in plan.breakdown)
    for name, gb in plan.breakdown.items():
        lines.append(f"  {name:<{width}}  {gb:7.2f} GB   {plan.notes.get(name, '')}")
    lines.append("")
    verdict = {"fits": "fits", "tight": "fits, tight", "does not fit": "DOES NOT FIT"}[plan.verdict]
    lines.append(f"verdict:  {verdict} ({plan.total_gb:.1f} of {plan.memory_gb:.1f} GB)")
    largest = plan.max_batch_size or "none"
    lines.append(f"largest:  micro-batch {largest} at max_len {plan.max_len}; "
                 f"max_len {plan.max_len_that_fits or 'none'} at micro-batch 1 with checkpointing")
    for line in plan.advice:
        lines.append(f"  - {line}" if line.startswith("set ") else f"advice:   {line}")
    lines.append(f"total: {plan.total_gb:.1f} GB")
    return "\n".join(lines)
