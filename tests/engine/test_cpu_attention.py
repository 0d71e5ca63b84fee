"""The bf16 CPU attention: the same attention as SDPA, math kernel for short keys, flash for long ones."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")


def test_dispatch_by_device_and_dtype():
    from engine.train.cpu_attention import NAME, attention_for

    assert attention_for("cpu", "bf16") == NAME and attention_for("cpu", "fp16") == NAME
    assert attention_for("cpu", "fp32") == "sdpa" and attention_for("cuda", "bf16") == "sdpa"


@pytest.mark.parametrize("length", [24, 300])  # math kernel below MATH_MAX_KV keys, flash above
def test_same_logits_and_gradients_as_sdpa(tiny_model_dir, length):
    from transformers import AutoModelForCausalLM

    from engine.train.cpu_attention import MATH_MAX_KV, attention_for

    assert (length <= MATH_MAX_KV) == (length == 24)
    ids = torch.randint(5, 400, (2, length))
    mask = torch.ones_like(ids)
    mask[1, length - 5:] = 0  # a padded row: the mask path, not only is_causal
    results = {}
    for attn in ("sdpa", attention_for("cpu", "bf16")):
        model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.bfloat16, attn_implementation=attn)
        out = model(input_ids=ids, attention_mask=mask, labels=ids)
        out.loss.backward()
        grad = model.model.layers[0].self_attn.q_proj.weight.grad.float()
        results[attn] = (out.logits.float()[mask.bool()], out.loss.item(), grad)
    (a, la, ga), (b, lb, gb) = results.values()
    assert torch.allclose(a, b, atol=0.05, rtol=0.02) and abs(la - lb) < 1e-2  # bf16 rounding only
    assert torch.allclose(ga, gb, atol=0.05 * ga.abs().max().item())


def test_skipping_adapter_input_casts_changes_nothing_under_autocast(tiny_model_dir):
    """bf16 -> fp32 -> bf16 is exact: the same loss and LoRA gradients without peft's input copies."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from engine.train.model_setup import skip_adapter_input_casts

    ids = torch.randint(5, 400, (2, 20))
    runs = []
    for skip in (False, True):
        torch.manual_seed(0)
        base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.bfloat16)
        model = get_peft_model(base, LoraConfig(r=4, target_modules="all-linear", init_lora_weights="gaussian"))
        if skip:
            assert skip_adapter_input_casts(model) > 0
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        grads = [p.grad.clone() for n, p in model.named_parameters() if "lora_" in n]
        runs.append((loss.item(), grads))
    (l0, g0), (l1, g1) = runs
    assert l0 == l1 and all(torch.equal(a, b) for a, b in zip(g0, g1))
