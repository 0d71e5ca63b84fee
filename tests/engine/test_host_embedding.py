"""train.offload_embedding: the frozen input-embedding table kept in host RAM gives the same training, is hidden
from the model's parameters, state and moves, and is used only where it can apply."""

from __future__ import annotations

import pytest

from engine.config import load_config
from engine.errors import ConfigError


@pytest.fixture
def untied_dir(tmp_path, smol_tokenizer):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=smol_tokenizer.vocab_size + 20, hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         tie_word_embeddings=False, pad_token_id=smol_tokenizer.pad_token_id)
    LlamaForCausalLM(config).save_pretrained(str(tmp_path))
    smol_tokenizer.save_pretrained(str(tmp_path))
    return tmp_path


def adapter_model(model_dir, *overrides):
    from engine.train.device import DeviceChoice
    from engine.train.model_setup import attach_trainable, load_base
    from transformers import set_seed

    cfg = load_config(None, [f"model={model_dir}", "method=lora", "quant.compute_dtype=fp32", *overrides])
    set_seed(1)
    return attach_trainable(load_base(cfg, model_dir, DeviceChoice("cpu", "fp32", "test")), cfg, True), cfg


def loss_and_grads(model):
    import torch

    ids = torch.tensor([[5, 9, 14, 3, 7, 11], [2, 8, 8, 1, 4, 6]])
    model.zero_grad()
    loss = model(input_ids=ids, labels=ids).loss
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


def test_host_table_trains_exactly_like_the_device_one(untied_dir):
    import torch

    from engine.train.host_embedding import install
    from engine.train.host_embedding_module import HostEmbedding
    from engine.train.model_setup import count_params

    model, cfg = adapter_model(untied_dir)
    before_loss, before = loss_and_grads(model)
    counts = count_params(model)
    table = model.get_input_embeddings().weight
    names = {n for n, _ in model.named_parameters()}
    assert install(model, cfg, "cuda") == table.numel()  # what a GPU run does; the decision reads only the name
    assert isinstance(model.get_input_embeddings(), HostEmbedding)
    after_loss, after = loss_and_grads(model)
    assert after_loss == before_loss
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)
    assert count_params(model) == counts  # the table still counts as the model's
    gone = names - {n for n, _ in model.named_parameters()}
    assert len(gone) == 1 and next(iter(gone)).endswith("embed_tokens.weight")
    assert not any(k.endswith("embed_tokens.weight") for k in model.state_dict())
    model.to(torch.float64)  # a Trainer's or accelerate's .to() leaves the host table alone
    assert model.get_input_embeddings().weight.dtype == torch.float32 and model.get_input_embeddings().weight is table


def test_only_where_it_applies(untied_dir, tiny_model_dir):
    from engine.train.host_embedding import install

    model, cfg = adapter_model(untied_dir)
    assert install(model, cfg, "cpu") == 0  # host RAM already
    off, cfg_off = adapter_model(untied_dir, "train.offload_embedding=false")
    assert install(off, cfg_off, "cuda") == 0
    tied, cfg_tied = adapter_model(tiny_model_dir)  # the tiny SmolLM2 ties its head to the table
    assert install(tied, cfg_tied, "cuda") == 0
    tied, cfg_tied = adapter_model(tiny_model_dir, "train.offload_embedding=true")
    with pytest.raises(ConfigError, match="tied to the output head.*offload_embedding=auto"):
        install(tied, cfg_tied, "cuda")
    full_cfg = load_config(None, [f"model={untied_dir}", "method=full"])
    assert install(model, full_cfg, "cuda") == 0  # a method that trains the base keeps its table
    sharded = load_config(None, [f"model={untied_dir}", "method=lora", "dist.strategy=fsdp"])
    assert install(model, sharded, "cuda") == 0  # FSDP/DeepSpeed place every parameter themselves
