"""The planner's terms for QLoRA on a k-bit base, checked against the arithmetic the code implies and, where a CPU
can hold it, against what the loaded model really allocates (a Llama-3.1-8B shape scaled down: same vocabulary,
untied head, GQA ratio and MLP ratio; 2 layers, width 256)."""

from __future__ import annotations

import json

import pytest

from engine.config import load_config
from engine.plan import build_plan
from engine.plan.estimate import GB, NF4_DQ_BYTES
from engine.plan.gpu_catalog import Target
from engine.plan.model_catalog import lookup

RTX_4060 = Target("cuda", "RTX 4060", 8.0)
QLORA_8B = dict(model="meta-llama/Llama-3.1-8B-Instruct", method="qlora", batch_size=1, max_len=2048, lora={"r": 16})


def plan(target=RTX_4060, train=None, **settings):
    merged = {**QLORA_8B, **settings, "train": {"gradient_checkpointing": True, "backend": "hf", **(train or {})}}
    return build_plan(load_config(base=merged), target)


def test_quantised_base_plans_its_float_weights_in_the_compute_dtype_on_both_backends():
    s = lookup("llama-3.1-8b")
    other = s.embedding_params + s.small_params + s.extra_frozen_params
    want = (s.linear_params * NF4_DQ_BYTES + other * 2) / GB  # embeddings, head and norms in bf16: no fp32 upcast
    for backend in ("hf", "unsloth"):
        p = plan(train={"backend": backend, "offload_embedding": False})
        assert p.breakdown["base weights"] == pytest.approx(want, abs=1e-3)
        assert "in 16-bit" in p.notes["base weights"]


def test_input_embedding_in_host_ram_leaves_the_gpu():
    s = lookup("llama-3.1-8b")
    table = s.vocab_size * s.hidden_size * 2 / GB  # 128256 x 4096 bf16 = 0.98 GB
    on, off = plan(), plan(train={"offload_embedding": False})
    assert off.breakdown["base weights"] - on.breakdown["base weights"] == pytest.approx(table, abs=1e-3)
    assert "input embedding stays in host RAM" in on.notes["base weights"]
    cpu = Target("cpu", "CPU 64GB", 64.0)  # the table is in host RAM anyway
    assert plan(cpu).breakdown == plan(cpu, train={"offload_embedding": False}).breakdown
    tied = Target("cuda", "24 GB", 24.0)  # Llama-3.2-1B ties its head to the table: the head needs it on the GPU
    assert (plan(tied, model="meta-llama/Llama-3.2-1B-Instruct").breakdown
            == plan(tied, model="meta-llama/Llama-3.2-1B-Instruct", train={"offload_embedding": False}).breakdown)


def test_offload_takes_the_layer_inputs_off_the_gpu_only():
    s = lookup("llama-3.1-8b")
    inputs = s.num_layers * 2 * s.hidden_size * 2048 / GB  # 32 layers x bf16 x hidden x tokens = 0.5 GB
    on, off = plan(), plan(train={"gradient_checkpointing": "offload"})
    assert on.breakdown["activations"] - off.breakdown["activations"] == pytest.approx(inputs, abs=1e-3)
    assert "offloaded to CPU" in off.notes["activations"] and "offloaded" not in on.notes["activations"]
    assert off.gradient_checkpointing is True
    cpu = Target("cpu", "CPU 64GB", 64.0)  # host RAM holds activations anyway: nothing moves, nothing saved
    assert plan(cpu, train={"gradient_checkpointing": "offload"}).breakdown == plan(cpu).breakdown


def test_lora_dropout_zero_keeps_no_mask_or_input_copy():
    with_dropout, without = plan(lora={"r": 16, "dropout": 0.05}), plan()
    s = lookup("llama-3.1-8b")
    n_in = sum(i for _, i, _ in s.modules("all-linear"))
    assert with_dropout.breakdown["activations"] - without.breakdown["activations"] == pytest.approx(5 * n_in * 2048 / GB, abs=1e-3)


def test_8b_qlora_fits_an_8gb_card():
    hf = plan()  # the defaults: input embedding in host RAM, layer inputs on the GPU, adamw_torch
    assert hf.fits and hf.verdict == "fits" and hf.total_gb <= 7.0, hf.breakdown  # was 10.4 GB with peft's fp32 upcast
    unsloth = plan(train={"backend": "unsloth"})
    assert unsloth.total_gb <= 6.5, unsloth.breakdown
    leaner = plan(train={"gradient_checkpointing": "offload"}, optim={"optimizer": "adamw_8bit"})
    assert leaner.total_gb < hf.total_gb - 0.5, leaner.breakdown


@pytest.fixture(scope="module")
def scaled_8b_dir(tmp_path_factory, smol_tokenizer):
    """Llama-3.1-8B's architecture scaled to CPU size, with its 128256-entry vocabulary and untied head."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=128256, hidden_size=256, intermediate_size=896, num_hidden_layers=2,
                         num_attention_heads=8, num_key_value_heads=2, tie_word_embeddings=False,
                         max_position_embeddings=512, pad_token_id=smol_tokenizer.pad_token_id)
    out = tmp_path_factory.mktemp("scaled-8b")
    LlamaForCausalLM(config).to(torch.bfloat16).save_pretrained(str(out))
    smol_tokenizer.save_pretrained(str(out))
    return out


def held_bytes(model) -> int:
    """Bytes of the frozen weights a model holds on its device (4-bit data + absmax and its constants)."""
    held = 0
    for p in model.parameters():
        if p.requires_grad:
            continue
        held += p.numel() * p.element_size()
        state = getattr(p, "quant_state", None)
        if state is not None:  # absmax per 64-weight block (8-bit with double quantisation) + its fp32 constants
            held += state.absmax.numel() * state.absmax.element_size()
            held += state.state2.absmax.numel() * state.state2.absmax.element_size()
    return held


def test_planned_base_weights_match_the_loaded_qlora_model(scaled_8b_dir):
    """Bytes the loaded, prepared QLoRA model really holds vs the planner's base-weights term (1% apart), with the
    input-embedding table on the device (CPU) and then moved to host RAM as a GPU run does."""
    import torch

    from engine.plan.model_lookup import find_shape
    from engine.plan.run_spec import run_spec
    from engine.plan.estimate import base_weights
    from engine.train.device import DeviceChoice
    from engine.train.host_embedding import install
    from engine.train.model_setup import attach_trainable, load_base

    cfg = load_config(None, [f"model={scaled_8b_dir}", "method=qlora", "quant.compute_dtype=bf16", "train.backend=hf"])
    model = attach_trainable(load_base(cfg, scaled_8b_dir, DeviceChoice("cpu", "bf16", "test")), cfg, True)
    held = held_bytes(model)
    float_weights = {p.dtype for p in model.parameters() if not p.requires_grad and p.dtype != torch.uint8}
    assert float_weights == {torch.bfloat16}
    shape = find_shape(str(scaled_8b_dir))
    assert held == pytest.approx(base_weights(run_spec(cfg, "cpu", shape, 1, True)).gb * GB, rel=0.01)
    assert json.loads((scaled_8b_dir / "config.json").read_text())["vocab_size"] == 128256

    assert install(model, cfg, "cuda") == 128256 * 256  # what a GPU run does (train.offload_embedding=auto)
    assert held_bytes(model) == held - 128256 * 256 * 2
    assert held_bytes(model) == pytest.approx(base_weights(run_spec(cfg, "cuda", shape, 1, True)).gb * GB, rel=0.01)


def test_a_tight_plan_names_the_speed_only_changes_that_give_headroom():
    tight = plan(train={"offload_embedding": False})  # 7.7 of 8 GB
    assert tight.verdict == "tight"
    headroom = [a for a in tight.advice if a.startswith("for headroom")]
    assert headroom and "train.offload_embedding=auto" in headroom[0], tight.advice
    qwen14 = plan(Target("cuda", "RTX 3060", 12.0), model="Qwen/Qwen2.5-14B-Instruct")
    assert qwen14.fits and qwen14.verdict == "tight"
    assert any("optim.optimizer=paged_adamw_8bit" in a for a in qwen14.advice), qwen14.advice
