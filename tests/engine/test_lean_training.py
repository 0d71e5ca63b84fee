"""Lean adapter training on a quantised base: no fp32 upcast of its float weights (engine/train/kbit_prep.py)
and gradient checkpointing with offloaded layer inputs (engine/train/activation_offload.py)."""

from __future__ import annotations

import os

import pytest

from engine.config import load_config
from engine.errors import ConfigError
from tests.conftest import write_jsonl
from tests.engine.run_helpers import train

TOY = [{"instruction": f"Say the code for item {i}.", "output": f"Code {i}{i}{i}."} for i in range(8)]


def qlora_cfg(model_dir, data, out, *extra):
    return load_config(None, [f"model={model_dir}", f"data={data}", f"output_dir={out}", "method=qlora",
                              "quant.compute_dtype=bf16", "batch_size=4", "max_len=64", "lr=3e-3", "max_steps=3",
                              "optim.warmup_ratio=0", "train.backend=hf", "seed=3", *extra])


@pytest.fixture(scope="module")
def lean_and_upcast(tiny_model_dir, tmp_path_factory):
    """The same 3-step QLoRA run twice: lean (offload asked for, on CPU) and with peft's fp32 upcast."""
    tmp = tmp_path_factory.mktemp("lean")
    data = write_jsonl(tmp / "toy.jsonl", TOY)
    lean = train(qlora_cfg(tiny_model_dir, data, tmp / "lean", "train.gradient_checkpointing=offload"))
    os.environ["EDGETUNE_PEFT_UPCAST"] = "1"
    try:
        upcast = train(qlora_cfg(tiny_model_dir, data, tmp / "upcast", "train.gradient_checkpointing=true"))
    finally:
        del os.environ["EDGETUNE_PEFT_UPCAST"]
    return lean, upcast


def frozen_float_dtypes(model) -> set:
    import torch

    return {p.dtype for p in model.parameters() if not p.requires_grad and p.dtype.is_floating_point and p.dtype != torch.uint8}


@pytest.mark.slow  # two 3-step QLoRA runs (shared by the three tests): ~1.5 min on 2 busy cores
def test_quantised_base_keeps_its_float_weights_in_the_compute_dtype(lean_and_upcast):
    import torch

    from engine.train.kbit_prep import upcast_parameters

    (_, _, lean), (_, _, upcast) = lean_and_upcast
    assert frozen_float_dtypes(lean.model) == {torch.bfloat16}  # embedding (tied head) and norms
    assert upcast_parameters(lean.model) == 0
    assert {p.dtype for p in lean.model.parameters() if p.requires_grad} == {torch.float32}  # adapters stay fp32
    # peft's preparation holds the same weights in fp32: the embedding alone is vocab x hidden
    embedding = lean.model.get_input_embeddings().weight.numel()
    assert upcast_parameters(upcast.model) >= embedding
    assert torch.float32 in frozen_float_dtypes(upcast.model)


@pytest.mark.slow  # two 3-step QLoRA runs (shared by the three tests): ~1.5 min on 2 busy cores
def test_lean_training_matches_the_upcast_path(lean_and_upcast):
    (lean_result, lean_events, lean), (up_result, up_events, _) = lean_and_upcast
    assert lean_result["status"] == up_result["status"] == "completed"
    lean_losses = [e["loss"] for e in lean_events if e["type"] == "step"]
    up_losses = [e["loss"] for e in up_events if e["type"] == "step"]
    assert len(lean_losses) == len(up_losses) == 3
    # the frozen weights hold the same bf16 values either way; the matmuls run in bf16 under autocast
    assert lean_losses == pytest.approx(up_losses, rel=0.02)
    assert lean_losses[-1] < lean_losses[0]  # it learns
    base = lean.model.base_model.model
    assert base.is_gradient_checkpointing


@pytest.mark.slow  # two 3-step QLoRA runs (shared by the three tests): ~1.5 min on 2 busy cores
def test_offload_on_cpu_checkpoints_and_says_why_nothing_moves(lean_and_upcast):
    (_, events, lean), _ = lean_and_upcast
    warnings = [e for e in events if e["type"] == "warning" and "offload" in e["message"]]
    assert len(warnings) == 1 and "nothing to offload" in warnings[0]["message"]
    assert next(e for e in events if e["type"] == "plan")["gradient_checkpointing"] is True


def test_gradient_checkpointing_accepts_offload_and_names_the_choices():
    assert load_config(None, ["train.gradient_checkpointing=offload"]).train.gradient_checkpointing == "offload"
    assert load_config(None, ["train.gradient_checkpointing=true"]).train.gradient_checkpointing is True
    with pytest.raises(ConfigError, match=r"gradient_checkpointing.*'offload'"):
        load_config(None, ["train.gradient_checkpointing=sometimes"])


def test_offloaded_checkpointing_gives_the_same_gradients(tiny_model_dir, monkeypatch):
    """Layer inputs packed through save_on_cpu and brought back for the recomputation: identical gradients."""
    import torch
    import transformers.modeling_utils as mu
    from transformers import AutoModelForCausalLM

    from engine.train.activation_offload import enable_checkpointing

    packed = []

    class CountingSaveOnCpu(torch.autograd.graph.save_on_cpu):
        def __init__(self, pin_memory=False, device_type="cuda"):
            # CPU-only torch has no pinned-memory allocator (transformers asks for pinning: on a GPU it is)
            super().__init__(pin_memory=pin_memory and torch.cuda.is_available(), device_type=device_type)
            pack = self.pack_hook

            def counting_pack(t):
                packed.append(tuple(t.shape))
                return pack(t)

            self.pack_hook = counting_pack

    monkeypatch.setattr(mu, "save_on_cpu", CountingSaveOnCpu)
    cfg = load_config(None, ["train.gradient_checkpointing=offload"])
    ids = torch.randint(0, 1000, (2, 24), generator=torch.Generator().manual_seed(0))

    def grads(offload: bool):
        model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
        model.train()
        enable_checkpointing(model, cfg, offload=offload)
        model(input_ids=ids, labels=ids).loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    plain = grads(False)
    assert not packed
    offloaded = grads(True)
    hidden = (2, 24, 64)
    assert packed.count(hidden) >= 2  # each of the 2 checkpointed layers' input went through the offload hook
    assert plain.keys() == offloaded.keys()
    for name in plain:
        torch.testing.assert_close(offloaded[name], plain[name], rtol=0, atol=0, msg=name)
