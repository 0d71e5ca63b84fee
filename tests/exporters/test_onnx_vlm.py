"""ONNX export of a vision-language model: ONNX Runtime GenAI's multimodal pipeline, end to end.

A tiny random Gemma 3 shaped as the runtime needs (256 soft tokens per image: a 64 px image in
4 px patches), LoRA-trained for two steps on coloured shapes, is exported from its run folder
(merged first), verified through onnxruntime-genai's own processor and graphs against
transformers, and chatted with, image included, through `engine chat`'s backend.
"""

from __future__ import annotations

import json

import pytest

from engine.errors import EdgetuneError
from tests.engine.vision_fixtures import shapes_dir  # noqa: F401  (fixture)

pytestmark = pytest.mark.slow

VLM_FILES = {"genai_config.json", "model.onnx", "model.onnx.data", "vision.onnx", "embedding.onnx",
             "processor_config.json", "tokenizer.json", "verify.json", "export.json", "README.md"}


@pytest.fixture(scope="session")
def gemma3_256_dir(tmp_path_factory, bundled_model_dir):
    """A tiny Gemma 3 whose images are 256 tokens, as ONNX Runtime GenAI's Gemma 3 pipeline expands them."""
    from engine.vision.tiny_gemma3 import build_tiny_gemma3

    return build_tiny_gemma3(tmp_path_factory.mktemp("gemma3-256") / "model", bundled_model_dir, image_size=64,
                             patch_size=4, tokens_per_image=256, sliding_window=512)


@pytest.fixture(scope="session")
def gemma3_256_run(tmp_path_factory, gemma3_256_dir, shapes_dir):  # noqa: F811
    from engine.config import load_config
    from tests.engine.run_helpers import train

    out = tmp_path_factory.mktemp("gemma3-256-run") / "run"
    cfg = load_config(None, [f"model={gemma3_256_dir}", f"data={shapes_dir / 'train.jsonl'}", f"output_dir={out}",
                             "method=lora", "batch_size=4", "max_len=320", "lr=1e-2", "max_steps=2", "optim.warmup_ratio=0",
                             "train.backend=hf", "quant.compute_dtype=fp32"])
    result, events, _ = train(cfg)
    assert result["status"] == "completed", events[-3:]
    return out


@pytest.fixture(scope="session")
def gemma3_onnx(gemma3_256_run, tmp_path_factory):
    from exporters.onnx.exporter import OnnxExporter

    out = tmp_path_factory.mktemp("gemma3-onnx") / "onnx-fp32"
    return OnnxExporter(str(gemma3_256_run), precision="fp32", out=out, speed=True, say=lambda s: None).run()


def test_gemma3_run_exports_as_a_verified_multimodal_pipeline(gemma3_onnx):
    folder = gemma3_onnx.folder
    assert VLM_FILES <= {f.name for f in folder.iterdir()}
    assert not [p.name for p in folder.parent.iterdir() if p.name.startswith(".")]  # no partial/stage/verify images
    genai = json.loads((folder / "genai_config.json").read_text())
    assert genai["model"]["type"] == "gemma3"
    assert genai["model"]["vision"]["filename"] == "vision.onnx"
    assert genai["model"]["embedding"]["inputs"] == {"input_ids": "input_ids", "image_features": "image_features"}
    assert "inputs_embeds" in genai["model"]["decoder"]["inputs"] and "input_ids" not in genai["model"]["decoder"]["inputs"]
    ops = [t["operation"]["type"] for t in json.loads((folder / "processor_config.json").read_text())["processor"]["transforms"]]
    assert ops == ["DecodeImage", "Resize", "Rescale", "Normalize", "Permute3D"]

    v = gemma3_onnx.verification
    assert v["passed"], v["failures"]
    s = v["summary"]
    assert s["nmse"] < 1e-6 and s["top1"] == 1.0  # the graph computes what transformers computes (causally)
    assert s["max_pixel_diff"] < 1e-3 and s["vision_nmse"] < 1e-6
    assert all(im["same_ids"] and im["prompt_tokens"] > 256 for im in v["images"])
    assert v["image_logits_as_trained"]["kl"] < 0.05  # vs transformers' bidirectional image attention: close, not equal
    assert s["same_greedy_text"].split("/")[0] == s["same_greedy_text"].split("/")[1]
    assert gemma3_onnx.speed["tokens_per_s"] > 0


def test_onnx_vlm_chat_with_an_image_matches_the_run(gemma3_onnx, gemma3_256_run, shapes_dir):  # noqa: F811
    from engine.chat import ChatSession
    from engine.chat.backends import backend_class

    image = shapes_dir / "images" / "held_out-0.png"
    assert backend_class(str(gemma3_onnx.folder)).name == "onnx-vlm"
    assert backend_class(str(gemma3_onnx.folder)).accepts_images
    answers = {}
    for ref in (str(gemma3_onnx.folder), str(gemma3_256_run)):
        session = ChatSession(ref, temperature=0, max_tokens=6, repeat_penalty=1.0)
        session.attach_image(image)
        answers[ref] = session.ask("What colour is the shape?")
        assert session.ask("And its shape?")  # a follow-up: the image is in the history, sent again with it
    assert answers[str(gemma3_onnx.folder)] == answers[str(gemma3_256_run)]

    session = ChatSession(str(gemma3_onnx.folder), temperature=0, max_tokens=4)
    assert session.ask("Hello") is not None  # text only: the pipeline runs without an image
    session.attach_image(image)
    session.attach_image(image)
    with pytest.raises(EdgetuneError, match="one image per prompt"):
        session.ask("Compare them.")


def test_int4_decoder_with_the_fp32_vision_side_verifies(gemma3_256_dir, tmp_path):
    from exporters.onnx.exporter import OnnxExporter

    result = OnnxExporter(str(gemma3_256_dir), precision="int4", out=tmp_path / "onnx-int4", speed=False,
                          say=lambda s: None).run()
    assert result.verification["passed"], result.verification["failures"]
    assert result.verification["summary"]["vision_nmse"] < 1e-6  # the vision graph stays fp32
