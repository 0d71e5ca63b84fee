"""The planner on vision-language models: the shape read from config.json + the processor, checked against the
built model; the vision terms checked against what a real forward pass saves for backward and what the
collator really batches (a tiny Idefics3 seeing 64x64 images in 4x4 patches: 256 patches, 64 image tokens)."""

from __future__ import annotations

import json

import pytest

from engine.config import load_config
from engine.plan import build_plan
from engine.plan.estimate import GB, estimate
from engine.plan.gpu_catalog import Target
from engine.plan.model_lookup import find_shape
from engine.plan.run_spec import run_spec
from engine.plan.shape import shape_from_config
from tests.engine.vision_fixtures import *  # noqa: F401,F403  (session fixtures)

CPU = Target("cpu", "CPU 16GB", 16.0)
# HuggingFaceTB/SmolVLM-256M-Instruct's config.json and preprocessor_config.json (the numbers that matter)
SMOLVLM_256M = {"model_type": "idefics3", "scale_factor": 4, "tie_word_embeddings": False,
                "vision_config": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                                  "num_attention_heads": 12, "patch_size": 16, "image_size": 512},
                "text_config": {"model_type": "llama", "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
                                "num_attention_heads": 9, "num_key_value_heads": 3, "vocab_size": 49280}}
SMOLVLM_PROCESSOR = {"do_image_splitting": True, "size": {"longest_edge": 2048}, "max_image_size": {"longest_edge": 512}}


@pytest.fixture(scope="module")
def vlm64(tmp_path_factory, bundled_model_dir):
    """(model folder, shapes data folder): a tiny Idefics3 with 64x64 images in 4x4 patches, and 64x64 shapes."""
    from engine.vision.shapes import write_shapes
    from engine.vision.tiny_vlm import build_tiny_vlm

    out = tmp_path_factory.mktemp("vlm64")
    model = build_tiny_vlm(out / "model", bundled_model_dir, random_lm=True, image_size=64, patch_size=4)
    write_shapes(out / "shapes", train=4, held_out=1, size=64)
    return model, out / "shapes"


def test_smolvlm_256m_parts_add_up_to_its_published_size():
    shape = shape_from_config(SMOLVLM_256M, "smolvlm-256m", processor=SMOLVLM_PROCESSOR)
    v = shape.vision
    assert shape.total_params / 1e6 == pytest.approx(256, rel=0.01)  # "SmolVLM-256M"
    assert v.encoder_params / 1e6 == pytest.approx(86.4, rel=0.01)  # SigLIP-B/16 at 512 px
    assert v.projector_params == 768 * 16 * 576
    assert shape.language_params == shape.total_params - v.total_params
    # 512 px crops of 32x32 patches, pixel shuffle 4x4 -> 64 tokens; a 2048 px image -> 4x4 crops + the global view
    assert (v.crops_per_image, v.tokens_per_image) == (17, 17 * 64)
    one_crop = shape_from_config(SMOLVLM_256M, "smolvlm-256m").vision
    assert (one_crop.crops_per_image, one_crop.tokens_per_image) == (1, 64)


@pytest.mark.parametrize("hub_id, millions", [("HuggingFaceTB/SmolVLM-256M-Instruct", 256),
                                               ("HuggingFaceTB/SmolVLM-500M-Instruct", 507)])
def test_smolvlm_catalog_entries_plan_offline(hub_id, millions):
    shape = find_shape(hub_id)
    assert shape.source == "catalog" and shape.total_params / 1e6 == pytest.approx(millions, rel=0.01)
    assert (shape.vision.crops_per_image, shape.vision.tokens_per_image) == (17, 1088)


def test_shape_of_a_vlm_folder_matches_the_built_model(vlm64):
    from transformers import AutoModelForImageTextToText

    from engine.vision.data import load_vision_examples
    from engine.vision.encode import VisionEncoder
    from engine.vision.processor import load_processor

    folder, shapes = vlm64
    shape = find_shape(str(folder))
    model = AutoModelForImageTextToText.from_pretrained(str(folder))
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert shape.vision.encoder_params == count(model.model.vision_model)
    assert shape.vision.projector_params == count(model.model.connector)
    assert shape.total_params == count(model)
    row = VisionEncoder(load_processor(folder), 512).encode(load_vision_examples(str(shapes / "train.jsonl")).examples[0])
    assert shape.vision.tokens_per_image == row["image_tokens"] == 64


def _saved_bytes(model, batch) -> int:
    """Bytes autograd keeps for backward after one forward pass (parameters excluded; each storage once)."""
    import torch

    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen = {}

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params:
            seen[ptr] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(**batch)
    return sum(seen.values())


@pytest.fixture(scope="module")
def vlm64_batch(vlm64):
    from engine.vision.collate import VisionCollator
    from engine.vision.data import load_vision_examples
    from engine.vision.encode import VisionEncoder
    from engine.vision.processor import load_processor

    folder, shapes = vlm64
    processor = load_processor(folder)
    rows = VisionEncoder(processor, 512).encode_all(load_vision_examples(str(shapes / "train.jsonl")).examples).rows
    rows = [r for r in rows if r["length"] == rows[0]["length"]][:2] or rows[:1]
    batch = VisionCollator(processor)(rows * (2 // len(rows)))
    return batch


def _measured_and_planned(vlm64, batch, options: list[str]):
    import torch

    from engine.train.device import choose_device
    from engine.train.model_setup import attach_trainable, load_base

    folder, shapes = vlm64
    cfg = load_config(None, [f"model={folder}", f"data={shapes / 'train.jsonl'}", "method=lora", "lora.r=8", "lora.dropout=0",
                             "quant.compute_dtype=fp32", f"max_len={batch['input_ids'].shape[1]}", *options])
    torch.manual_seed(0)
    model = attach_trainable(load_base(cfg, folder, choose_device("fp32"), head="image-text-to-text"), cfg, False)
    model.train()
    spec = run_spec(cfg, "cpu", find_shape(str(folder)), batch["input_ids"].shape[0], False)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return _saved_bytes(model, dict(batch)), {p.name: p.gb * GB for p in estimate(spec)}, trainable, spec


def test_vision_activations_match_what_the_forward_pass_saves(vlm64, vlm64_batch):
    """Each vision option's extra saved bytes (over a frozen vision side) vs the planned 'vision activations'."""
    frozen, frozen_plan, _, _ = _measured_and_planned(vlm64, vlm64_batch, [])
    assert "vision activations" not in frozen_plan  # a frozen encoder and projector save nothing
    for options in (["lora.vision_tower=true"], ["lora.train_projector=true"], ["lora.vision_tower=true", "lora.train_projector=true"]):
        saved, planned, trainable, spec = _measured_and_planned(vlm64, vlm64_batch, options)
        assert planned["vision activations"] == pytest.approx(saved - frozen, rel=0.10), options
        assert trainable == spec.trainable, options  # the planner's trainable count is the model's


def test_image_inputs_are_the_collated_pixels(vlm64, vlm64_batch):
    folder, shapes = vlm64
    cfg = load_config(None, [f"model={folder}", f"data={shapes / 'train.jsonl'}", "method=lora"])
    planned = {p.name: p.gb * GB for p in estimate(run_spec(cfg, "cpu", find_shape(str(folder)), 2, False))}
    batch_bytes = sum(vlm64_batch[k].nbytes for k in ("pixel_values", "pixel_attention_mask"))
    assert planned["image inputs"] == batch_bytes


def test_checkpointing_keeps_only_encoder_layer_inputs(vlm64):
    folder, shapes = vlm64
    base = [f"model={folder}", f"data={shapes / 'train.jsonl'}", "method=lora", "lora.vision_tower=true", "batch_size=2"]
    plain = build_plan(load_config(None, base + ["train.gradient_checkpointing=false"]), CPU)
    ckpt = build_plan(load_config(None, base + ["train.gradient_checkpointing=true"]), CPU)
    v = find_shape(str(folder)).vision
    assert ckpt.breakdown["vision activations"] < plain.breakdown["vision activations"] / 3
    assert "checkpointed: 2 encoder layer inputs" in ckpt.notes["vision activations"]
    assert v.num_layers == 2


def test_images_per_record_come_from_the_data(vlm64, tmp_path):
    folder, shapes = vlm64
    two = tmp_path / "two.jsonl"
    rec = {"conversations": [{"from": "human", "value": "<image><image>Same colour?"}, {"from": "gpt", "value": "yes"}],
           "images": ["images/train-0.png", "images/train-1.png"]}
    two.write_text(json.dumps(rec) + "\n")
    one = build_plan(load_config(None, [f"model={folder}", f"data={shapes / 'train.jsonl'}", "batch_size=2"]), CPU)
    both = build_plan(load_config(None, [f"model={folder}", f"data={two}", "batch_size=2"]), CPU)
    assert (one.vision["images_per_record"], both.vision["images_per_record"]) == (1, 2)
    assert both.breakdown["image inputs"] == pytest.approx(2 * one.breakdown["image inputs"], rel=1e-3)


def test_engine_plan_describes_the_vlm_without_torch(vlm64):
    import subprocess
    import sys
    from pathlib import Path

    folder, shapes = vlm64
    code = ("import sys\nfrom engine.cli.main import main\n"
            f"rc = main(['plan', 'model={folder}', 'data={shapes / 'train.jsonl'}', 'lora.vision_tower=true', '--gpu', 'CPU 8GB'])\n"
            "assert rc == 0, rc\n"
            "heavy = [m for m in ('torch', 'transformers', 'peft') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 0, out.stderr
    assert "vision:   encoder 0.1M + projector 0.0M params (16-bit, encoder LoRA train), LM 3.2M; 64 image tokens" in out.stdout
    for part in ("vision weights", "image inputs", "vision activations"):
        assert part in out.stdout


def test_max_len_below_the_image_tokens_is_called_out(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(SMOLVLM_256M))
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(SMOLVLM_PROCESSOR))
    short = build_plan(load_config(None, [f"model={tmp_path}", "max_len=1024"]), Target("cuda", "test", 24.0))
    assert short.advice[0].startswith("max_len 1024 leaves no room for text after 1088 image tokens per record")
    long = build_plan(load_config(None, [f"model={tmp_path}", "max_len=2048"]), Target("cuda", "test", 24.0))
    assert not any("image tokens" in a for a in long.advice)


def test_planned_vision_weights_are_the_bytes_a_qlora_load_holds(vlm64):
    """The encoder and projector stay 16-bit under QLoRA (never quantised): the loaded bytes are the planned term."""
    from engine.plan.vision_memory import vision_weights
    from engine.train.device import DeviceChoice
    from engine.train.model_setup import load_base

    folder, _ = vlm64
    cfg = load_config(None, [f"model={folder}", "method=qlora", "quant.compute_dtype=bf16", "train.backend=hf"])
    model = load_base(cfg, folder, DeviceChoice("cpu", "bf16", "test"), head="image-text-to-text")
    held = sum(p.numel() * p.element_size() for n, p in model.named_parameters()
               if n.startswith(("model.vision_model.", "model.connector.")))
    planned = vision_weights(run_spec(cfg, "cpu", find_shape(str(folder)), 1, False)).gb * GB
    assert held == pytest.approx(planned, rel=1e-9)


def test_the_plan_refuses_the_stages_training_refuses():
    from engine.errors import ConfigError

    with pytest.raises(ConfigError, match="stage=kto does not train vision-language models.*Stages that do: sft, dpo"):
        build_plan(load_config(None, ["model=smolvlm-256m", "stage=kto"]), Target("cuda", "test", 24.0))
    dpo = build_plan(load_config(None, ["model=smolvlm-256m", "stage=dpo", "batch_size=1"]), Target("cuda", "test", 24.0))
    sft = build_plan(load_config(None, ["model=smolvlm-256m", "batch_size=1"]), Target("cuda", "test", 24.0))
    assert dpo.breakdown["image inputs"] == pytest.approx(2 * sft.breakdown["image inputs"], rel=1e-3)  # both sides' pixels


def test_dynamic_resolution_towers_plan_their_image_tokens_from_max_pixels():
    """Qwen2-VL-2B's vision config: max_pixels = 1280 x 28 x 28 gives up to 1280 image tokens (Qwen's documented
    cap); a square image of that area gives 35 x 35 merged patches = 1225."""
    from engine.plan.vision_shape import vision_shape

    config = {"model_type": "qwen2_vl", "vision_config": {"depth": 32, "embed_dim": 1280, "hidden_size": 1536,
                                                           "mlp_ratio": 4, "num_heads": 16, "patch_size": 14,
                                                           "spatial_merge_size": 2, "temporal_patch_size": 2}}
    shape = vision_shape(config, 1536, {"size": {"longest_edge": 1280 * 28 * 28, "shortest_edge": 56 * 56}})
    assert shape.tokens_per_image == 1225 and shape.num_layers == 32 and shape.hidden_size == 1280
    tiny = vision_shape({"vision_config": {"depth": 2, "embed_dim": 32, "hidden_size": 64, "patch_size": 8,
                                           "spatial_merge_size": 2}}, 64, {"size": {"longest_edge": 32 * 32}})
    assert tiny.tokens_per_image == 4  # what the tiny Qwen2-VL's processor gives a 32 px image
