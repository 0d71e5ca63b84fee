"""lora.vision_tower=true: LoRA on the vision encoder too. Only its adapters train, with or without gradient
checkpointing; the merge folds them into the encoder, and the mmproj GGUF is written from the merged encoder."""

from __future__ import annotations

import pytest

from engine.config import load_config
from engine.errors import ConfigError
from tests.engine.vision_fixtures import *  # noqa: F401,F403  (session fixtures)

TOWER = "model.vision_model."


@pytest.fixture(scope="module")
def tower_run(tmp_path_factory, tiny_vlm_dir, shapes_dir):
    """(run folder, events) of a 4-step run with LoRA on the decoder and the vision encoder."""
    from tests.engine.run_helpers import train

    out = tmp_path_factory.mktemp("tower-run") / "run"
    cfg = load_config(None, [f"model={tiny_vlm_dir}", f"data={shapes_dir / 'train.jsonl'}", f"output_dir={out}",
                             "method=lora", "lora.vision_tower=true", "batch_size=4", "max_len=64", "lr=1e-2", "max_steps=4",
                             "optim.warmup_ratio=0", "lora.dropout=0", "train.backend=hf", "quant.compute_dtype=fp32"])
    result, events, _ = train(cfg)
    assert result["status"] == "completed", events[-3:]
    return out, events


@pytest.mark.parametrize("checkpointing", [False, True])
def test_a_step_moves_only_the_adapters_of_encoder_and_decoder(tiny_vlm_dir, shapes_dir, checkpointing):
    import torch

    from engine.train.device import choose_device
    from engine.train.model_setup import attach_trainable, load_base
    from engine.vision.collate import VisionCollator
    from engine.vision.data import load_vision_examples
    from engine.vision.encode import VisionEncoder
    from engine.vision.processor import load_processor

    cfg = load_config(None, [f"model={tiny_vlm_dir}", "method=lora", "lora.vision_tower=true", "lora.dropout=0",
                             "quant.compute_dtype=fp32"])
    torch.manual_seed(0)
    model = attach_trainable(load_base(cfg, tiny_vlm_dir, choose_device("fp32"), head="image-text-to-text"), cfg, checkpointing)
    model.train()
    processor = load_processor(tiny_vlm_dir)
    rows = VisionEncoder(processor, 64).encode_all(load_vision_examples(str(shapes_dir / "train.jsonl")).examples[:4]).rows
    batch = VisionCollator(processor)(rows)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(2):
        opt.zero_grad()
        model(**batch).loss.backward()
        opt.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    tower = {n for n in changed if ".vision_model." in n}
    assert tower and all("lora_" in n for n in changed)  # the encoder's adapters trained, nothing else moved
    for layer in ("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"):
        assert any(f".{layer}.lora_B" in n for n in tower), layer
    assert any(".text_model." in n for n in changed)
    assert not any("patch_embedding" in n or "connector" in n for n, p in model.named_parameters() if p.requires_grad)


def test_the_adapter_holds_the_encoder_and_merge_folds_it(tower_run, tiny_vlm_dir):
    from safetensors import safe_open
    from safetensors.torch import load_file

    from engine.train.merge import merge_adapter

    run, _ = tower_run
    adapter = load_file(str(run / "adapter" / "adapter_model.safetensors"))
    assert any(".vision_model." in k and "lora_B" in k and t.abs().max() > 0 for k, t in adapter.items())
    report = merge_adapter(run)
    assert report.max_abs_diff <= 1e-4 and report.base_diff > 0  # logits on prompts with an image
    merged = load_file(str(report.out / "model.safetensors"))
    with safe_open(str(tiny_vlm_dir / "model.safetensors"), "pt") as base:
        q = f"{TOWER}encoder.layers.0.self_attn.q_proj.weight"
        assert not base.get_tensor(q).equal(merged[q])  # the merged folder holds the adapted encoder
        patch = f"{TOWER}embeddings.patch_embedding.weight"
        assert base.get_tensor(patch).equal(merged[patch])  # the convolution had no adapter


def test_mmproj_is_written_from_the_merged_encoder(tower_run, tmp_path):
    import gguf
    import numpy as np
    from safetensors.torch import load_file

    from exporters.gguf.mmproj import write_mmproj
    from engine.train.merge import merge_adapter

    run, _ = tower_run
    merged_dir = run / "merged"
    if not (merged_dir / "config.json").is_file():
        merge_adapter(run)
    out = write_mmproj(merged_dir, tmp_path / "mmproj-f16.gguf")
    tensors = {t.name: t for t in gguf.GGUFReader(str(out)).tensors}
    merged = load_file(str(merged_dir / "model.safetensors"))[f"{TOWER}encoder.layers.0.self_attn.q_proj.weight"]
    written = np.asarray(tensors["v.blk.0.attn_q.weight"].data, dtype=np.float32).reshape(merged.shape)
    assert np.allclose(written, merged.float().numpy(), atol=1e-3)


def test_vision_tower_on_a_text_model_is_refused(tiny_model_dir):
    from engine.train.device import choose_device
    from engine.train.model_setup import attach_trainable, load_base

    cfg = load_config(None, [f"model={tiny_model_dir}", "method=lora", "lora.vision_tower=true"])
    with pytest.raises(ConfigError, match="lora.vision_tower=true is for vision-language models"):
        attach_trainable(load_base(cfg, tiny_model_dir, choose_device("fp32")), cfg, False)


def test_targets_that_miss_the_encoder_name_its_linears(tiny_vlm_dir):
    from engine.train.device import choose_device
    from engine.train.model_setup import attach_trainable, load_base

    cfg = load_config(None, [f"model={tiny_vlm_dir}", "method=lora", "lora.vision_tower=true", "lora.target_modules=[gate_proj]"])
    with pytest.raises(ConfigError, match="matches no linear layer of the vision encoder, whose linears are: fc1, fc2, k_proj"):
        attach_trainable(load_base(cfg, tiny_vlm_dir, choose_device("fp32"), head="image-text-to-text"), cfg, False)


def test_vision_tower_needs_a_lora_family_method():
    with pytest.raises(ConfigError, match="lora.vision_tower .* needs a LoRA-family method .* not method=ia3"):
        load_config(None, ["method=ia3", "lora.vision_tower=true"])
    assert load_config(None, ["method=qlora", "lora.vision_tower=true"]).lora.vision_tower is True
