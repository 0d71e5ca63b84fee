"""'auto' resolution, verdicts and advice: the planner's contract with `engine train`."""

import json

import pytest

from engine.config import load_config
from engine.plan import MemoryPlan, build_plan, plan_memory, resolve_auto
from engine.plan.gpu_catalog import Target
from engine.plan.planner import MAX_AUTO_BATCH


def cfg_for(**settings):
    return load_config(base={"model": "llama-3.2-1b", "method": "qlora", "max_len": 2048, **settings})


def test_plain_values_pass_through():
    cfg = cfg_for(batch_size=3, train={"gradient_checkpointing": False})
    assert resolve_auto(cfg, "cuda", 1.0) == (3, False)


def test_auto_batch_is_the_largest_that_fits_and_grows_with_memory():
    cfg = cfg_for(batch_size="auto", train={"gradient_checkpointing": True})
    small, _ = resolve_auto(cfg, "cuda", 6.0)
    big, _ = resolve_auto(cfg, "cuda", 24.0)
    assert 1 <= small < big <= MAX_AUTO_BATCH
    # the chosen batch fits in 90% of the memory and one more does not
    cfg.optim.batch_size = small
    assert plan_memory(cfg, "cuda", 6.0).total_gb <= 0.9 * 6.0
    cfg.optim.batch_size = small + 1
    assert plan_memory(cfg, "cuda", 6.0).total_gb > 0.9 * 6.0


def test_checkpointing_only_when_needed():
    cfg = cfg_for(batch_size=1, train={"gradient_checkpointing": "auto"})
    assert resolve_auto(cfg, "cuda", 80.0) == (1, False)
    assert resolve_auto(cfg, "cuda", 4.0) == (1, True)


def test_both_auto_prefers_a_full_micro_batch_without_checkpointing():
    cfg = cfg_for(batch_size="auto", train={"gradient_checkpointing": "auto"})
    batch, ckpt = resolve_auto(cfg, "cuda", 80.0)
    assert not ckpt and batch * 2048 >= 4096
    batch, ckpt = resolve_auto(cfg, "cuda", 6.0)  # without checkpointing not even 2 x 2048 fits
    assert ckpt and batch >= 1


def test_nothing_fits_gives_batch_1_with_checkpointing_and_advice():
    cfg = load_config(base={"model": "qwen2.5-14b", "method": "lora", "batch_size": "auto", "max_len": 4096,
                            "train": {"gradient_checkpointing": "auto"}})
    p = plan_memory(cfg, "cuda", 8.0)
    assert (p.batch_size, p.gradient_checkpointing, p.fits, p.verdict) == (1, True, False, "does not fit")
    assert p.advice[0].startswith("does not fit in 8.0 GB") and any("method=qlora" in a for a in p.advice)


def test_advice_overrides_make_the_run_fit():
    cfg = load_config(base={"model": "llama-3.1-8b", "method": "lora", "batch_size": 4, "max_len": 2048,
                            "train": {"gradient_checkpointing": False, "backend": "hf"}})
    target = Target("cuda", "RTX 4070 Ti Super", 16.0)
    p = build_plan(cfg, target)
    assert not p.fits
    overrides = []
    for line in p.advice[1:]:
        text = line.removeprefix("set ").split(" (")[0].split(":")[0]
        overrides += text.split()
    fixed = build_plan(load_config(base={"model": "llama-3.1-8b", "method": "lora", "batch_size": 4, "max_len": 2048,
                                         "train": {"gradient_checkpointing": False, "backend": "hf"}},
                                   overrides=overrides), target)
    assert fixed.fits, (p.advice, overrides)


def test_memory_plan_is_plain_data():
    p = plan_memory(cfg_for(batch_size="auto"), "cuda", 12.0)
    assert isinstance(p, MemoryPlan)
    data = json.loads(json.dumps(p.to_dict()))
    for key in ("total_gb", "breakdown", "fits", "batch_size", "gradient_checkpointing", "advice"):
        assert key in data
    assert p.fits and p.verdict in ("fits", "tight") and p.advice[0].startswith("fits with")


def test_cpu_plan_uses_this_machines_ram_when_not_given():
    cfg = load_config(base={"model": "smollm2-135m-instruct", "method": "lora", "batch_size": 2, "max_len": 256,
                            "train": {"gradient_checkpointing": False}})
    p = plan_memory(cfg, "cpu")
    assert p.device == "cpu" and p.memory_gb > 0.5 and p.compute_dtype in ("fp32", "16-bit")
    assert "checkpoint file pages" not in p.breakdown  # a float base is the mapped file itself
    q = plan_memory(load_config(base={"model": "smollm2-135m-instruct", "method": "qlora"}), "cpu", 16.0)
    assert ("checkpoint file pages" in q.breakdown) == (q.compute_dtype == "fp32")  # a view into the file keeps it mapped
    fp32 = plan_memory(load_config(base={"model": "smollm2-135m-instruct", "method": "qlora",
                                         "quant": {"compute_dtype": "fp32"}}), "cpu", 16.0)
    assert "checkpoint file pages" in fp32.breakdown


@pytest.mark.parametrize("preset", ["cpu_quickstart", "gpu_1b_qlora", "gpu_3b_qlora", "gpu_8b_qlora"])
def test_every_preset_plans(preset):
    from engine.paths import PRESETS_DIR

    cfg = load_config(PRESETS_DIR / f"{preset}.yaml")
    device = "cpu" if preset.startswith("cpu") else "cuda"
    p = plan_memory(cfg, device, 16.0)
    assert p.total_gb > 0 and p.batch_size >= 1
