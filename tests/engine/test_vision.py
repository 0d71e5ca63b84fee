"""Vision-language models: data layouts and their errors, masking, LoRA on the text decoder only,
merge, chat with images (tiny random Idefics3, Gemma 3, LLaVA and Qwen2-VL models built in-process; no downloads).
Tests taking `vlm_family` run once per family (vision_fixtures.TINY_FAMILIES)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from engine.errors import DataError, EdgetuneError
from tests.conftest import write_jsonl
from tests.engine.vision_fixtures import *  # noqa: F401,F403  (session fixtures)


def _png(path: Path, size=(20, 20), colour=(255, 0, 0)) -> str:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path.name


PARTS = {"messages": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What colour?"}]},
                      {"role": "assistant", "content": "red"}], "images": ["a.png"]}
SHAREGPT = {"conversations": [{"from": "human", "value": "<image>What colour?"}, {"from": "gpt", "value": "red"}],
            "images": ["a.png"]}
ROLE_CONTENT = {"messages": [{"role": "user", "content": "<image>What colour?"}, {"role": "assistant", "content": "red"}],
                "image": "a.png"}


def test_layouts_read_to_the_same_example(tmp_path):
    from engine.vision.data import load_vision_examples

    _png(tmp_path / "a.png")
    loaded = load_vision_examples(str(write_jsonl(tmp_path / "d.jsonl", [PARTS, SHAREGPT, ROLE_CONTENT])))
    first = loaded.examples[0]
    assert first.messages[0]["content"] == [{"type": "image"}, {"type": "text", "text": "What colour?"}]
    assert first.images == [str((tmp_path / "a.png").resolve())] and first.sizes == [(20, 20)]
    for other in loaded.examples[1:]:
        assert other.messages == first.messages and other.images == first.images


@pytest.mark.parametrize("record, image, expected", [
    ({**SHAREGPT, "images": ["missing.png"]}, None, "image file '.*missing.png' not found"),
    ({**SHAREGPT, "images": ["a.png", "a.png"]}, "a.png", "1 image placeholder.*2 image"),
    ({**SHAREGPT, "images": ["bad.png"]}, "bad.png", "image .*bad.png. cannot be read"),
    ({**SHAREGPT, "images": ["huge.png"]}, "huge.png", "image .*huge.png. is 9000x4; the largest side allowed is 8192"),
])
def test_bad_images_name_file_and_line(tmp_path, record, image, expected):
    from engine.vision.data import load_vision_examples

    _png(tmp_path / "a.png")
    (tmp_path / "bad.png").write_bytes(b"not a png")
    _png(tmp_path / "huge.png", size=(9000, 4))
    data = write_jsonl(tmp_path / "d.jsonl", [SHAREGPT, record])
    with pytest.raises(DataError, match=f"d.jsonl:2: {expected}"):
        load_vision_examples(str(data))
    skipped = load_vision_examples(str(data), on_error="skip")
    assert len(skipped.examples) == 1 and skipped.skipped[0][0].endswith("d.jsonl:2")


def test_answer_tokens_alone_carry_loss(vlm_family, family_vlm_dir, tmp_path):
    from engine.vision.collate import IGNORE, VisionCollator
    from engine.vision.data import load_vision_examples
    from engine.vision.encode import VisionEncoder
    from engine.vision.processor import load_processor

    _png(tmp_path / "a.png")
    two_turns = {"messages": [*PARTS["messages"], {"role": "user", "content": "And the shape?"},
                              {"role": "assistant", "content": "square"}], "images": ["a.png"]}
    examples = load_vision_examples(str(write_jsonl(tmp_path / "d.jsonl", [PARTS, two_turns]))).examples
    processor = load_processor(family_vlm_dir)
    encoder = VisionEncoder(processor, max_len=128)
    rows = encoder.encode_all(examples).rows
    assert rows[0]["image_tokens"] == vlm_family.image_tokens  # (32/8)^2 patches, pixel shuffle / avg pool 2x2
    batch = VisionCollator(processor)(rows)
    # one image per record (Qwen2-VL's pixels are its images' patches, one row each: its image_grid_thw has a row per image)
    assert batch.get("image_grid_thw", batch["pixel_values"]).shape[0] == 2
    tok, eot = processor.tokenizer, vlm_family.end_of_turn
    for i, answers in enumerate([f"red{eot}", f"red{eot}square{eot}"]):
        kept = batch["labels"][i][batch["labels"][i] != IGNORE]
        assert tok.decode(kept) == answers
    assert (batch["labels"][0][batch["attention_mask"][0] == 0] == IGNORE).all()
    if vlm_family.marks_image_tokens:  # the model attends both ways inside an image, in training too
        image = batch["input_ids"] == encoder.image_token_id
        assert (batch["token_type_ids"] == image.long()).all() and image.sum(1).tolist() == [4, 4]
    if "image_grid_thw" in batch:  # Qwen2-VL: the model computes its M-RoPE positions from the grid and the token types
        image = batch["input_ids"] == encoder.image_token_id
        assert batch["image_grid_thw"].tolist() == [[1, 4, 4], [1, 4, 4]]  # 32x32 px in 8 px patches; 2x2 merge: 4 tokens
        assert (batch["mm_token_type_ids"] == image.long()).all() and image.sum(1).tolist() == [4, 4]
    too_short = VisionEncoder(processor, max_len=10).encode_all(examples)
    assert too_short.dropped == 2 and not too_short.rows


def test_training_changes_only_the_text_decoder_adapter(vlm_family, family_vlm_run):
    from safetensors.torch import load_file

    run, events = family_vlm_run
    tensors = load_file(str(run / "adapter" / "adapter_model.safetensors"))
    assert tensors and all(f".{vlm_family.decoder}." in k and "lora_" in k for k in tensors)
    assert any(t.abs().max() > 0 for k, t in tensors.items() if "lora_B" in k)  # B starts at 0: it trained
    config = json.loads((run / "adapter" / "adapter_config.json").read_text())
    assert config["target_modules"].startswith("^" + re.escape(vlm_family.decoder) + r"\.")
    assert (run / "adapter" / "processor_config.json").is_file()  # the image processor travels with the run
    losses = [e["loss"] for e in events if e["type"] == "step"]
    assert len(losses) == 4 and all(l == l for l in losses)


def test_merge_equals_adapter_and_chat_takes_images(vlm_family, family_vlm_run, shapes_dir):
    from engine.chat import ChatSession
    from engine.train.merge import merge_adapter

    run, _ = family_vlm_run
    report = merge_adapter(run)
    assert report.max_abs_diff <= 1e-4 and report.base_diff > 0
    assert (report.out / "processor_config.json").is_file() and (report.out / "model.safetensors").is_file()
    image = shapes_dir / "images" / "held_out-0.png"
    answers = []
    for ref in (run / "merged", run):  # the merged folder, and the run (adapter on its base)
        s = ChatSession(str(ref), temperature=0, max_tokens=6, repeat_penalty=1.0)
        assert s.backend.name == "vlm"
        s.attach_image(str(image))
        ids = s.prompt_ids("What colour is the shape?")
        assert ids.count(s.backend.processor.image_token_ids[0]) == vlm_family.image_tokens
        answers.append(s.ask("What colour is the shape?"))
        assert s.history[0]["images"] == [str(image.resolve())] and not s.pending_images
    assert answers[0] == answers[1]


def test_chat_decoding_with_the_cache_equals_a_full_forward(vlm_family, family_vlm_dir, shapes_dir, monkeypatch):
    """The chat loop's cached steps (pixels on the first only; Qwen2-VL's M-RoPE positions carried by the model) give
    the logits of one forward pass over the prompt and the tokens chosen so far."""
    from types import SimpleNamespace

    import torch

    import engine.chat.decoding as decoding
    from engine.vision.chat_backend import VisionChatBackend

    backend = VisionChatBackend(str(family_vlm_dir))
    messages = [{"role": "user", "content": "What colour is the shape?", "images": [str(shapes_dir / "images" / "held_out-0.png")]}]
    ids, inputs = backend.prompt_inputs(messages)
    forced, seen_logits = [100, 200, 300, 400], []

    def pick(logits, seen, params, gen):
        seen_logits.append(logits.clone())
        return forced[len(seen_logits) - 1]

    monkeypatch.setattr(decoding, "sample_next", pick)
    backend.stop_ids = set()
    list(backend.stream(ids, SimpleNamespace(seed=0, max_tokens=len(forced)), inputs))
    full = torch.tensor([ids + forced[:-1]])
    # per-token inputs (Gemma 3's token_type_ids, Qwen2-VL's mm_token_type_ids) go on as text (0) over the new tokens
    extra = {k: torch.cat([v, v.new_zeros(1, len(forced) - 1)], 1) if v.dim() == 2 and v.shape == (1, len(ids)) else v
             for k, v in inputs.items()}
    with torch.no_grad():
        logits = backend.model(input_ids=full, attention_mask=torch.ones_like(full), **extra).logits[0]
    assert len(seen_logits) == len(forced)
    for k, step in enumerate(seen_logits):
        assert torch.allclose(step, logits[len(ids) - 1 + k].float(), atol=1e-4), k


def test_text_models_refuse_images(tiny_model_dir, shapes_dir, tmp_path):
    from engine.chat import ChatSession
    from engine.config import load_config
    from tests.engine.run_helpers import train

    s = ChatSession(str(tiny_model_dir), temperature=0)
    with pytest.raises(EdgetuneError, match="reads text only"):
        s.attach_image(str(shapes_dir / "images" / "held_out-0.png"))
    cfg = load_config(None, [f"model={tiny_model_dir}", f"data={shapes_dir / 'train.jsonl'}", f"output_dir={tmp_path / 'r'}",
                             "method=lora", "max_steps=1", "train.backend=hf"])
    with pytest.raises(DataError, match="train.jsonl:1: this record has images, but model .* reads text only"):
        train(cfg)


def test_qlora_keeps_the_vision_side_16_bit(vlm_family, family_vlm_dir):
    from engine.config import load_config
    from engine.train.device import choose_device
    from engine.train.model_setup import load_base

    cfg = load_config(None, [f"model={family_vlm_dir}", "method=qlora"])
    model = load_base(cfg, family_vlm_dir, choose_device("fp32"), head="image-text-to-text")
    kinds = {name: type(m).__name__ for name, m in model.named_modules()}
    assert kinds[f"{vlm_family.decoder}.layers.0.self_attn.q_proj"] == "Linear4bit"
    assert kinds[vlm_family.vision_layer] == "Linear"
    assert all(n.startswith(vlm_family.decoder + ".") for n, k in kinds.items() if k == "Linear4bit")  # projector, head too


def test_unsupported_vlm_family_is_named(tmp_path):
    from engine.errors import ConfigError
    from engine.vision.families import family_for

    with pytest.raises(ConfigError, match="model_type='mystery_vl'.*supported: gemma3 .*; idefics3 .*; llava \\(llava\\); "
                                          "qwen2_5_vl \\(qwen2_5_vl\\); qwen2_vl \\(qwen2_vl\\)"):
        family_for({"model_type": "mystery_vl", "vision_config": {}})


def test_data_inspect_shows_images_and_their_tokens(vlm_family, family_vlm_dir, shapes_dir, capsys):
    from engine.cli.main import main

    assert main(["data", "inspect", str(shapes_dir / "train.jsonl"), "--model", str(family_vlm_dir)]) == 0
    out = capsys.readouterr().out
    assert "16 image + text record(s), 16 image(s)" in out and "image sizes: smallest 32x32" in out
    assert f"image tokens: {vlm_family.image_tokens} per image" in out and "train.jsonl:1:" in out
    answer = json.loads((shapes_dir / "train.jsonl").read_text().splitlines()[0])["conversations"][1]["value"]
    assert "trained on: " + f"{answer}{vlm_family.end_of_turn}".replace("\n", "\\n") in out  # the answer + its end of turn


def test_planner_counts_the_vision_tower():
    from engine.plan.shape import vision_params

    # SmolVLM-256M: SigLIP-B/16 at 512 px (12 x 768, 3072) + a 768*4^2 -> 576 pixel-shuffle projector: ~93M
    smolvlm = {"model_type": "idefics3", "scale_factor": 4, "vision_config": {
        "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "patch_size": 16, "image_size": 512}}
    assert 90e6 < vision_params(smolvlm, 576) < 96e6
    assert vision_params({"model_type": "gemma3", "vision_config": {"hidden_size": 1152}}, 2560) == 417_000_000


def test_cli_chat_image_flag_and_slash_image(vlm_run, shapes_dir, capsys):
    from engine.chat import ChatSession
    from engine.cli.chat_cmd import _command
    from engine.cli.main import main

    run, _ = vlm_run
    image = shapes_dir / "images" / "held_out-1.png"
    assert main(["chat", str(run), "--image", str(image), "-m", "What shape is this?", "--temperature", "0",
                 "--max-tokens", "3"]) == 0
    s = ChatSession(str(run), temperature=0)
    assert _command(f"/image {image}", [s]) and s.pending_images == [str(image.resolve())]
    assert _command("/image nowhere.png", [s]) and len(s.pending_images) == 1
    assert "image file" in capsys.readouterr().out


def test_other_multimodal_checkpoints_keep_the_text_path(tmp_path):
    from engine.vision import is_vlm_folder

    (tmp_path / "config.json").write_text(json.dumps({"model_type": "paligemma", "vision_config": {"hidden_size": 8},
                                                      "text_config": {"hidden_size": 8}}))
    assert not is_vlm_folder(tmp_path)  # trained, merged and exported as its language model, as before
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gemma3_text", "hidden_size": 8}))
    assert not is_vlm_folder(tmp_path)  # a text-only Gemma 3 (Gemma3ForCausalLM) stays a text model
    for model_type in ("idefics3", "gemma3"):
        (tmp_path / "config.json").write_text(json.dumps({"model_type": model_type, "vision_config": {}}))
        assert is_vlm_folder(tmp_path)


def test_train_projector_saves_the_connector_with_the_adapter(vlm_family, family_vlm_dir, shapes_dir, tmp_path):
    from safetensors.torch import load_file

    from engine.config import load_config
    from tests.engine.run_helpers import train

    cfg = load_config(None, [f"model={family_vlm_dir}", f"data={shapes_dir / 'train.jsonl'}", f"output_dir={tmp_path / 'r'}",
                             "method=lora", "batch_size=8", "max_len=64", "max_steps=1", "lora.train_projector=true",
                             "train.backend=hf", "quant.compute_dtype=fp32"])
    result, _, _ = train(cfg)
    assert result["status"] == "completed"
    keys = load_file(str(tmp_path / "r" / "adapter" / "adapter_model.safetensors"))
    assert any(vlm_family.projector in k for k in keys) and not any(vlm_family.in_vision_tower(k) for k in keys)


@pytest.mark.parametrize("train_projector", [False, True])
def test_a_training_step_changes_only_what_trains(vlm_family, family_vlm_dir, shapes_dir, train_projector):
    """One real optimiser step on an image batch: the LoRA weights move (and the projector, with
    lora.train_projector); the vision tower, the base LM and the frozen projector stay bit-identical."""
    import torch

    from engine.config import load_config
    from engine.train.device import choose_device
    from engine.train.model_setup import attach_trainable, load_base
    from engine.vision.collate import VisionCollator
    from engine.vision.data import load_vision_examples
    from engine.vision.encode import VisionEncoder
    from engine.vision.processor import load_processor

    cfg = load_config(None, [f"model={family_vlm_dir}", "method=lora", "lora.dropout=0", f"lora.train_projector={train_projector}"])
    head = "image-text-to-text"
    model = attach_trainable(load_base(cfg, family_vlm_dir, choose_device("fp32"), head=head), cfg, False, head)
    processor = load_processor(family_vlm_dir)
    rows = VisionEncoder(processor, 64).encode_all(load_vision_examples(str(shapes_dir / "train.jsonl")).examples[:4]).rows
    batch = VisionCollator(processor)(rows)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    model(**batch).loss.backward()
    optimizer.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p.detach(), before[n])}
    tiny = vlm_family
    assert changed and changed <= trainable
    assert any("lora_B" in n for n in changed)  # B starts at zero: the step moved it
    assert not any(tiny.in_vision_tower(n) for n in changed)
    assert all("lora_" in n or (train_projector and tiny.projector_path + "." in n) for n in changed)
    assert any(tiny.projector_path + "." in n for n in changed) == train_projector


def test_tiny_builder_cli_writes_a_llava_folder(bundled_model_dir, tmp_path, capsys):
    from engine.vision import is_vlm_folder, read_config
    from engine.vision.tiny_vlm import main

    assert main([str(tmp_path / "llava"), "--family", "llava", "--lm", str(bundled_model_dir), "--random-lm"]) == 0
    config = read_config(tmp_path / "llava")
    assert is_vlm_folder(tmp_path / "llava") and config["architectures"] == ["LlavaForConditionalGeneration"]
    assert config["vision_config"]["model_type"] == "clip_vision_model" and config["vision_feature_layer"] == -2
    processor = json.loads((tmp_path / "llava" / "processor_config.json").read_text())
    assert processor["processor_class"] == "LlavaProcessor"
    assert processor["image_processor"]["image_processor_type"] == "CLIPImageProcessor"
    assert not list(tmp_path.glob(".*partial"))


def test_tiny_builder_cli_writes_a_qwen2_vl_folder(bundled_model_dir, tmp_path):
    from engine.vision import is_vlm_folder, read_config
    from engine.vision.families import FAMILIES
    from engine.vision.processor import load_processor
    from engine.vision.tiny_vlm import main

    assert main([str(tmp_path / "qwen"), "--family", "qwen2_vl", "--lm", str(bundled_model_dir)]) == 0
    config = read_config(tmp_path / "qwen")
    assert is_vlm_folder(tmp_path / "qwen") and config["architectures"] == ["Qwen2VLForConditionalGeneration"]
    assert sum(config["text_config"]["rope_parameters"]["mrope_section"]) == 64 // 4 // 2  # half a head's dims
    processor = json.loads((tmp_path / "qwen" / "processor_config.json").read_text())
    assert processor["processor_class"] == "Qwen2VLProcessor"  # saved under its own name, though built images-only
    assert processor["image_processor"]["image_processor_type"] == "Qwen2VLImageProcessor"
    loaded = load_processor(tmp_path / "qwen")  # no torchvision, no video processor: the PIL image processor
    assert type(loaded.image_processor).__name__ == "Qwen2VLImageProcessorPil" and loaded.image_token == "<|image_pad|>"
    from safetensors import safe_open

    with safe_open(str(tmp_path / "qwen" / "model.safetensors"), "pt") as f:  # Qwen's file names, mapped back
        keys = {FAMILIES["qwen2_vl"].module_key(k) for k in f.keys()}
    assert "model.visual.merger.mlp.0.weight" in keys and "model.language_model.layers.0.self_attn.q_proj.weight" in keys
    assert not list(tmp_path.glob(".*partial"))



def test_a_hub_style_qwen2_vl_processor_loads_without_torchvision(bundled_model_dir, tmp_path):
    """Qwen's own folders: preprocessor_config.json (min/max_pixels) + video_preprocessor_config.json, whose video
    processor transformers refuses without torchvision ("requires the Torchvision library"): built images-only."""
    from engine.vision.merge import sample_image
    from engine.vision.processor import load_processor
    from engine.vision.tiny_qwen2_vl import build_tiny_qwen2_vl

    folder = build_tiny_qwen2_vl(tmp_path / "qwen", bundled_model_dir)
    image = json.loads((folder / "processor_config.json").read_text())["image_processor"]
    (folder / "processor_config.json").unlink()
    image.pop("size")
    (folder / "preprocessor_config.json").write_text(json.dumps({**image, "min_pixels": 32 * 32, "max_pixels": 32 * 32,
                                                                "processor_class": "Qwen2VLProcessor"}))
    (folder / "video_preprocessor_config.json").write_text(json.dumps({
        "video_processor_type": "Qwen2VLVideoProcessor", "processor_class": "Qwen2VLProcessor", "patch_size": 8}))
    processor = load_processor(folder)
    assert type(processor).__name__ == "Qwen2VLProcessor" and not hasattr(processor, "video_processor")
    enc = processor(text=["<|vision_start|><|image_pad|><|vision_end|>What?"], images=[[sample_image()]], return_tensors="pt")
    assert enc["image_grid_thw"].tolist() == [[1, 4, 4]]  # 64 px resized to max_pixels = 32x32: 4 image tokens
    assert (enc["input_ids"] == processor.image_token_id).sum() == 4


def test_qlora_run_trains_the_nf4_decoder(vlm_family, family_vlm_dir, shapes_dir, tmp_path):
    from safetensors.torch import load_file

    from engine.config import load_config
    from tests.engine.run_helpers import train

    cfg = load_config(None, [f"model={family_vlm_dir}", f"data={shapes_dir / 'train.jsonl'}", f"output_dir={tmp_path / 'r'}",
                             "method=qlora", "batch_size=4", "max_len=64", "lr=1e-2", "max_steps=2", "optim.warmup_ratio=0",
                             "train.backend=hf"])
    result, events, _ = train(cfg)
    assert result["status"] == "completed", events[-3:]
    tensors = load_file(str(tmp_path / "r" / "adapter" / "adapter_model.safetensors"))
    assert tensors and all(vlm_family.decoder + "." in k and "lora_" in k for k in tensors)
    assert any(t.abs().max() > 0 for k, t in tensors.items() if "lora_B" in k)


def test_merged_folder_keeps_the_vision_side_and_loads_back(vlm_family, family_vlm_run, family_vlm_dir):
    """Saved under the family's checkpoint names (families.py module_key), the merged folder reloads as the
    same model: vision tower and projector bit-identical to the base, the decoder's LoRA layers changed."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForImageTextToText

    from engine.train.merge import merge_adapter
    from engine.vision.families import FAMILIES

    run, _ = family_vlm_run
    if not (run / "merged" / "config.json").is_file():
        merge_adapter(run)
    family, tiny = FAMILIES[vlm_family.name], vlm_family

    def saved(folder):
        return {family.module_key(k): t for k, t in load_file(str(folder / "model.safetensors")).items()}

    base, merged = saved(family_vlm_dir), saved(run / "merged")
    assert base.keys() == merged.keys()
    frozen = [k for k in base if k.startswith((tiny.vision_path + ".", tiny.projector_path + "."))]
    assert frozen and all(torch.equal(base[k].float(), merged[k].float()) for k in frozen)
    assert any(not torch.equal(base[k].float(), merged[k].float()) for k in base if "q_proj" in k and tiny.decoder in k)
    model = AutoModelForImageTextToText.from_pretrained(str(run / "merged"), dtype=torch.float32)
    loaded = dict(model.named_parameters())
    assert all(torch.equal(loaded[k], merged[k].float()) for k in frozen)
