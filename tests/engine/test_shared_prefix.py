"""The shared-prefix forward gives the plain forward's loss and gradients, and the trainer uses it."""

from __future__ import annotations

import copy

import pytest

from engine.train import shared_prefix

ARCHS = {  # model_type -> (config class, model class, extra config)
    "llama": ("LlamaConfig", "LlamaForCausalLM", {}),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", {}),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", {"head_dim": 16}),
}


def tiny_lora_model(arch: str, dropout: float = 0.0):
    import torch
    import transformers
    from peft import LoraConfig, get_peft_model

    cfg_cls, model_cls, extra = ARCHS[arch]
    config = getattr(transformers, cfg_cls)(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                                            pad_token_id=0, **extra)
    torch.manual_seed(0)
    model = getattr(transformers, model_cls)(config)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.2)
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, lora_dropout=dropout, target_modules="all-linear"))
    with torch.no_grad():  # non-zero B so every LoRA weight gets a gradient that depends on the prefix
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.1)
    return model.train()


def chat_batch(prefix: int = 12, tails=(9, 5, 14, 7)):
    """Rows sharing their first `prefix` tokens, right-padded, loss on the second half of each tail."""
    import torch

    g = torch.Generator().manual_seed(1)
    head = torch.randint(3, 128, (prefix,), generator=g)
    width = prefix + max(tails)
    ids = torch.zeros(len(tails), width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    labels = torch.full_like(ids, -100)
    for row, n in enumerate(tails):
        seq = torch.cat([head, torch.randint(3, 128, (n,), generator=g)])
        ids[row, : len(seq)], mask[row, : len(seq)] = seq, 1
        labels[row, prefix + n // 2: len(seq)] = seq[prefix + n // 2:]
    return ids, mask, labels


def loss_and_grads(model, ids, mask, labels):
    model.zero_grad()
    loss = model(input_ids=ids, attention_mask=mask, labels=labels, use_cache=False).loss
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("arch", list(ARCHS))
def test_same_loss_and_gradients_as_the_plain_forward(arch):
    import torch

    plain = tiny_lora_model(arch)
    shared = copy.deepcopy(plain)
    assert shared_prefix.install(shared)
    batch = chat_batch()
    want_loss, want = loss_and_grads(plain, *batch)
    got_loss, got = loss_and_grads(shared, *batch)
    assert shared_prefix.backbone_of(shared).shared_prefix_calls == 1
    assert got_loss == pytest.approx(want_loss, rel=1e-5)
    assert set(got) == set(want) and len(got) > 0
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-6, msg=name)


def test_hidden_states_equal_in_eval_and_plain_path_otherwise():
    import torch

    model = tiny_lora_model("llama").eval()
    ids, mask, _ = chat_batch()
    with torch.no_grad():
        want = model(input_ids=ids, attention_mask=mask, output_hidden_states=False, use_cache=False).logits
        shared_prefix.install(model)
        got = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
        backbone = shared_prefix.backbone_of(model)
        assert backbone.shared_prefix_calls == 1
        short, short_mask, _ = chat_batch(prefix=shared_prefix.MIN_PREFIX - 1)
        model(input_ids=short, attention_mask=short_mask, use_cache=False)  # prefix too short: plain forward
        model(input_ids=ids[:1], attention_mask=mask[:1], use_cache=False)  # one row: nothing to share
        model.generate(ids[:2, :14], attention_mask=mask[:2, :14], max_new_tokens=2, do_sample=False)  # KV cache
        assert backbone.shared_prefix_calls == 1


def test_common_prefix_len_stops_at_padding_and_keeps_one_token():
    import torch

    ids = torch.tensor([[5, 6, 7, 8], [5, 6, 7, 9], [5, 6, 7, 8]])
    assert shared_prefix.common_prefix_len(ids, None) == 3
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 1, 1, 1]])
    assert shared_prefix.common_prefix_len(ids, mask) == 2
    same = torch.tensor([[5, 6, 7], [5, 6, 7]])
    assert shared_prefix.common_prefix_len(same, None) == 2


def test_not_installed_for_untested_model_types():
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=64))
    assert not shared_prefix.install(model)


def test_gradient_checkpointing_runs_the_plain_forward():
    model = tiny_lora_model("llama")
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    shared_prefix.install(model)
    loss_and_grads(model, *chat_batch())
    assert getattr(shared_prefix.backbone_of(model), "shared_prefix_calls", 0) == 0


@pytest.mark.parametrize("prefix", [12, 0])
def test_length_groups_give_the_plain_forward_loss_and_gradients(prefix):
    """Rows of very different lengths run in groups (with and without a shared prefix): same loss, same gradients."""
    import torch

    plain = tiny_lora_model("llama")
    grouped = copy.deepcopy(plain)
    shared_prefix.install(grouped)
    batch = chat_batch(prefix=prefix, tails=(3, 40, 4, 38, 2, 41))
    want_loss, want = loss_and_grads(plain, *batch)
    got_loss, got = loss_and_grads(grouped, *batch)
    backbone = shared_prefix.backbone_of(grouped)
    assert backbone.length_group_calls == 1
    assert getattr(backbone, "shared_prefix_calls", 0) == (1 if prefix else 0)
    assert got_loss == pytest.approx(want_loss, rel=1e-5)
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-6, msg=name)


def test_length_groups_apply_under_gradient_checkpointing():
    import torch

    plain = tiny_lora_model("llama")
    grouped = copy.deepcopy(plain)
    grouped.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    shared_prefix.install(grouped)
    batch = chat_batch(prefix=12, tails=(3, 40, 4, 38))
    want_loss, want = loss_and_grads(plain, *batch)
    got_loss, got = loss_and_grads(grouped, *batch)
    assert shared_prefix.backbone_of(grouped).length_group_calls == 1
    assert got_loss == pytest.approx(want_loss, rel=1e-5)
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-4, atol=1e-6, msg=name)


def test_length_group_plan():
    from engine.train import length_groups

    assert length_groups.plan([10, 11, 12, 10], 12) is None  # nearly even: one batch
    groups = length_groups.plan([5, 60, 6, 58, 4, 59, 5, 61], 61)
    assert sorted(map(sorted, groups)) == [[0, 2, 4, 6], [1, 3, 5, 7]]
    assert length_groups.plan([7], 7) is None
    import torch

    assert length_groups.right_padded_lengths(torch.tensor([[1, 1, 0], [1, 1, 1]])) == [2, 3]
    assert length_groups.right_padded_lengths(torch.tensor([[0, 1, 1], [1, 1, 1]])) is None  # left padding
