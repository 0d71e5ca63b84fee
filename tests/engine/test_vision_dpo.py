"""stage=dpo on a vision-language model: image + text preference pairs (their layouts and errors), the batch
TRL's DPOTrainer gets, a few real steps on the tiny Idefics3; the stages that do not train VLMs refuse them."""

from __future__ import annotations

import pytest

from engine.config import load_config
from engine.errors import ConfigError, DataError
from tests.conftest import write_jsonl
from tests.engine.vision_fixtures import *  # noqa: F401,F403  (session fixtures)


@pytest.fixture(scope="module")
def pairs_file(shapes_dir):
    """The first 4 shapes questions as pairs (engine/vision/shapes.py: right answer chosen, a wrong one rejected)."""
    lines = (shapes_dir / "pairs.jsonl").read_text().splitlines()[:4]
    out = shapes_dir / "pairs4.jsonl"
    out.write_text("".join(line + "\n" for line in lines))
    return out


def test_pair_layouts_read_to_the_same_pair(shapes_dir):
    from engine.vision.pairs import load_vision_pairs

    image = "images/train-0.png"
    parts = {"prompt": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Colour?"}]}],
             "chosen": [{"role": "assistant", "content": [{"type": "text", "text": "red"}]}],
             "rejected": [{"role": "assistant", "content": "blue"}], "images": [image]}
    sharegpt = {"conversations": [{"from": "human", "value": "<image>Colour?"}], "chosen": {"from": "gpt", "value": "red"},
                "rejected": {"from": "gpt", "value": "blue"}, "images": [image]}
    no_placeholder = {"prompt": "Colour?", "chosen": "red", "rejected": "blue", "image": image}  # the image opens the turn
    pairs = load_vision_pairs(str(write_jsonl(shapes_dir / "layouts.jsonl", [parts, sharegpt, no_placeholder]))).examples
    first = pairs[0]
    assert first.messages == [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Colour?"}]}]
    assert (first.chosen, first.rejected, first.images) == ("red", "blue", [str((shapes_dir / image).resolve())])
    for other in pairs[1:]:
        assert (other.messages, other.chosen, other.rejected, other.images) == (first.messages, "red", "blue", first.images)


@pytest.mark.parametrize("record, expected", [
    ({"prompt": "<image>Colour?", "chosen": "red", "rejected": "blue", "images": ["missing.png"]}, "image file '.*missing.png' not found"),
    ({"prompt": "<image><image>Colour?", "chosen": "red", "rejected": "blue", "images": ["images/train-0.png"]},
     "2 image placeholder.*1 image"),
    ({"prompt": "<image>Colour?", "chosen": "red", "rejected": "red", "images": ["images/train-0.png"]}, "chosen and rejected are identical"),
])
def test_bad_pairs_name_file_and_line(shapes_dir, record, expected):
    from engine.vision.pairs import load_vision_pairs

    good = {"prompt": "<image>Colour?", "chosen": "red", "rejected": "blue", "images": ["images/train-0.png"]}
    data = write_jsonl(shapes_dir / "bad-pairs.jsonl", [good, record])
    with pytest.raises(DataError, match=f"bad-pairs.jsonl:2: {expected}"):
        load_vision_pairs(str(data))
    assert len(load_vision_pairs(str(data), on_error="skip").examples) == 1


def test_batch_is_chosen_then_rejected_with_answers_masked_in(tiny_vlm_dir, pairs_file):
    from engine.vision.encode import VisionEncoder
    from engine.vision.pairs import VisionPairCollator, encode_pair, load_vision_pairs
    from engine.vision.processor import load_processor

    processor = load_processor(tiny_vlm_dir)
    pairs = load_vision_pairs(str(pairs_file)).examples[:2]
    enc = VisionEncoder(processor, 64)
    batch = VisionPairCollator(processor)([encode_pair(enc, p) for p in pairs])
    assert batch["input_ids"].shape[0] == 4 and batch["pixel_values"].shape[:2] == (4, 1)
    tok = processor.tokenizer
    answers = [tok.decode(batch["input_ids"][i][batch["completion_mask"][i] == 1]) for i in range(4)]
    assert answers == [f"{p.chosen}<|im_end|>\n" for p in pairs] + [f"{p.rejected}<|im_end|>\n" for p in pairs]
    image_token = processor.image_token_id
    assert all(int((row == image_token).sum()) == 4 for row in batch["input_ids"])  # every row sees its image
    assert encode_pair(VisionEncoder(processor, 10), pairs[0]) is None  # longer than max_len: dropped whole


@pytest.mark.slow  # 7 s on an idle CPU, 35 s on 2 busy shared cores
def test_dpo_steps_on_a_vlm_prefer_the_chosen_answers(tiny_vlm_dir, pairs_file, tmp_path):
    import torch
    from safetensors import safe_open

    from tests.engine.run_helpers import train

    cfg = load_config(None, [f"model={tiny_vlm_dir}", f"data={pairs_file}", f"output_dir={tmp_path / 'run'}", "stage=dpo",
                             "method=lora", "batch_size=4", "max_len=64", "lr=1e-2", "max_steps=5", "optim.warmup_ratio=0",
                             "lora.dropout=0", "train.backend=hf", "quant.compute_dtype=fp32", "train.logging_steps=1"])
    result, events, recipe = train(cfg)
    assert result["status"] == "completed", events[-3:]
    steps = [e for e in events if e["type"] == "step"]
    assert steps[0]["loss"] == pytest.approx(0.6931, abs=1e-3)  # policy == reference at the start
    assert steps[-1]["loss"] < steps[0]["loss"] - 0.01  # the same 4 pairs each step: the loss goes down
    assert steps[-1]["metrics"]["reward_margin"] > 0 and steps[-1]["metrics"]["reward_accuracy"] >= 0.75
    changed = set()
    with safe_open(str(tiny_vlm_dir / "model.safetensors"), "pt") as base:
        for name, p in recipe.model.named_parameters():
            key = name.removeprefix("base_model.model.").replace(".base_layer", "")
            if "lora_" in name:
                continue
            assert torch.equal(p.detach(), base.get_tensor(key)), name  # the base (vision side included) is untouched
    for name, p in recipe.model.named_parameters():
        if "lora_B" in name and p.abs().max() > 0:
            changed.add(name)
    assert changed and all(".text_model." in n for n in changed)


@pytest.mark.parametrize("stage", ["kto", "orpo", "simpo", "rm", "grpo", "rloo"])
def test_other_stages_refuse_a_vlm_naming_sft_and_dpo(tiny_vlm_dir, pairs_file, tmp_path, stage):
    from tests.engine.run_helpers import train

    cfg = load_config(None, [f"model={tiny_vlm_dir}", f"data={pairs_file}", f"output_dir={tmp_path / stage}", f"stage={stage}",
                             "method=lora", "train.backend=hf", *(["rl.rewards=[length]"] if stage in ("grpo", "rloo") else [])])
    with pytest.raises(ConfigError, match=f"stage={stage} does not train vision-language models.*Stages that do: sft, dpo"):
        train(cfg)


def test_data_inspect_reads_image_pairs_for_dpo(tiny_vlm_dir, pairs_file, capsys):
    from engine.cli.main import main
    from engine.vision.inspect import inspect_vision

    report = inspect_vision(str(pairs_file), tiny_vlm_dir, max_len=64)
    assert (report.kind, report.stages, report.records, report.images) == ("preference", ["dpo"], 4, 4)
    assert report.image_tokens_per_image == 4 and report.over_max_len == 0
    assert main(["data", "inspect", str(pairs_file), "--model", str(tiny_vlm_dir)]) == 0
    out = capsys.readouterr().out
    assert "4 image + text preference pair(s), chosen | rejected trained by stage=dpo, 4 image(s)" in out
    assert "image tokens: 4 per image" in out
