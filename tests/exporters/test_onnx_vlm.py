"""ONNX export of a vision-language model: ONNX Runtime GenAI's multimodal pipeline, end to end.

Per family ONNX Runtime GenAI has a pipeline for: a tiny random Gemma 3 shaped as the runtime
needs (256 soft tokens per image: a 64 px image in 4 px patches) and a tiny random Qwen2.5-VL,
each LoRA-trained for two steps on coloured shapes, is exported from its run folder (merged
first), verified through onnxruntime-genai's own processor and graphs against transformers, and
chatted with, image included, through `engine chat`'s backend.
"""

from __future__ import annotations

import json
import math

import pytest

from engine.errors import EdgetuneError
from tests.engine.vision_fixtures import shapes_dir  # noqa: F401  (fixture)

pytestmark = pytest.mark.slow

VLM_FILES = {"genai_config.json", "model.onnx", "model.onnx.data", "vision.onnx", "embedding.onnx",
             "processor_config.json", "tokenizer.json", "verify.json", "export.json", "README.md"}


def _build(family, out, lm_dir):
    if family == "gemma3":  # 256 soft tokens per image, as the runtime's Gemma 3 pipeline expands them
        from engine.vision.tiny_gemma3 import build_tiny_gemma3

        return build_tiny_gemma3(out, lm_dir, image_size=64, patch_size=4, tokens_per_image=256, sliding_window=512)
    from engine.vision.tiny_qwen2_vl import build_tiny_qwen2_vl

    return build_tiny_qwen2_vl(out, lm_dir, version="qwen2_5_vl")


@pytest.fixture(scope="session", params=["gemma3", "qwen2_5_vl"])
def exportable_family(request):
    """Each VLM family whose ONNX Runtime GenAI pipeline edgetune builds."""
    return request.param


@pytest.fixture(scope="session")
def exportable_dir(exportable_family, tmp_path_factory, bundled_model_dir):
    return _build(exportable_family, tmp_path_factory.mktemp(f"{exportable_family}-onnx-model") / "model", bundled_model_dir)


@pytest.fixture(scope="session")
def exportable_run(exportable_family, exportable_dir, tmp_path_factory, shapes_dir):  # noqa: F811
    from engine.config import load_config
    from tests.engine.run_helpers import train

    out = tmp_path_factory.mktemp(f"{exportable_family}-onnx-run") / "run"
    cfg = load_config(None, [f"model={exportable_dir}", f"data={shapes_dir / 'train.jsonl'}", f"output_dir={out}",
                             "method=lora", "batch_size=4", "max_len=320", "lr=1e-2", "max_steps=2", "optim.warmup_ratio=0",
                             "train.backend=hf", "quant.compute_dtype=fp32"])
    result, events, _ = train(cfg)
    assert result["status"] == "completed", events[-3:]
    return out


@pytest.fixture(scope="session")
def exported(exportable_run, tmp_path_factory):
    from exporters.onnx.exporter import OnnxExporter

    out = tmp_path_factory.mktemp("vlm-onnx") / "onnx-fp32"
    return OnnxExporter(str(exportable_run), precision="fp32", out=out, speed=True, say=lambda s: None).run()


PROCESSOR_OPS = {"gemma3": ["DecodeImage", "Resize", "Rescale", "Normalize", "Permute3D"],
                 "qwen2_5_vl": ["DecodeImage", "ConvertRGB", "Resize", "Rescale", "Normalize", "PatchImage"]}


def test_a_vlm_run_exports_as_a_verified_multimodal_pipeline(exported, exportable_family):
    folder = exported.folder
    assert VLM_FILES <= {f.name for f in folder.iterdir()}
    assert not [p.name for p in folder.parent.iterdir() if p.name.startswith(".")]  # no partial/stage/verify images
    genai = json.loads((folder / "genai_config.json").read_text())
    assert genai["model"]["type"] == exportable_family
    assert genai["model"]["vision"]["filename"] == "vision.onnx"
    assert genai["model"]["embedding"]["inputs"] == {"input_ids": "input_ids", "image_features": "image_features"}
    assert "inputs_embeds" in genai["model"]["decoder"]["inputs"] and "input_ids" not in genai["model"]["decoder"]["inputs"]
    ops = [t["operation"]["type"] for t in json.loads((folder / "processor_config.json").read_text())["processor"]["transforms"]]
    assert ops == PROCESSOR_OPS[exportable_family]

    v = exported.verification
    assert v["passed"], v["failures"]
    s = v["summary"]
    assert s["nmse"] < 1e-6 and s["top1"] == 1.0  # the graph computes what transformers computes (causally)
    assert s["max_pixel_diff"] < 1e-3 and s["vision_nmse"] < 1e-6
    assert all(im["same_ids"] for im in v["images"])
    assert s["same_greedy_text"].split("/")[0] == s["same_greedy_text"].split("/")[1]
    assert exported.speed["tokens_per_s"] > 0
    if exportable_family == "gemma3":
        assert all(im["prompt_tokens"] > 256 for im in v["images"])
        assert v["image_logits_as_trained"]["kl"] < 0.05  # vs transformers' bidirectional image attention: close, not equal
    else:  # Qwen2.5-VL attends causally in transformers too; the runtime's M-RoPE positions need these ids
        assert v["image_logits_as_trained"] is None
        assert {"image_token_id", "vision_start_token_id"} <= set(genai["model"])
        assert genai["model"]["vision"]["inputs"] == {"pixel_values": "pixel_values", "image_grid_thw": "image_grid_thw"}


def test_onnx_vlm_chat_with_an_image_matches_the_run(exported, exportable_run, shapes_dir):  # noqa: F811
    from engine.chat import ChatSession
    from engine.chat.backends import backend_class

    image = shapes_dir / "images" / "held_out-0.png"
    assert backend_class(str(exported.folder)).name == "onnx-vlm"
    assert backend_class(str(exported.folder)).accepts_images
    answers = {}
    for ref in (str(exported.folder), str(exportable_run)):
        session = ChatSession(ref, temperature=0, max_tokens=6, repeat_penalty=1.0)
        session.attach_image(image)
        answers[ref] = session.ask("What colour is the shape?")
        assert session.ask("And its shape?")  # a follow-up: the image is in the history, sent again with it
    assert answers[str(exported.folder)] == answers[str(exportable_run)]

    session = ChatSession(str(exported.folder), temperature=0, max_tokens=4)
    assert session.ask("Hello") is not None  # text only: the pipeline runs without an image
    session.attach_image(image)
    session.attach_image(image)
    with pytest.raises(EdgetuneError, match="one image per prompt"):
        session.ask("Compare them.")


@pytest.mark.parametrize("precision", ["int4", "fp16"])  # fp16 builds for CUDA; verified on the CPU
def test_smaller_precisions_shrink_all_three_graphs_and_verify(exportable_dir, exported, tmp_path, precision):
    """int4: an int4 decoder, int8 vision weights and an int8 embedding table; fp16: an fp16 decoder and table,
    the vision graph fp32. Each verifies against transformers within its bounds."""
    import onnx

    from exporters.onnx.exporter import OnnxExporter

    result = OnnxExporter(str(exportable_dir), precision=precision, out=tmp_path / f"onnx-{precision}", speed=False,
                          say=lambda s: None).run()
    v = result.verification
    assert v["passed"], v["failures"]
    info = json.loads((result.folder / "export.json").read_text())["vision_language"]
    weights = onnx.load(str(result.folder / "embedding.onnx")).graph.initializer
    table = max(weights, key=lambda t: math.prod(t.dims))  # vocab x hidden
    types = {onnx.TensorProto.DataType.Name(table.data_type)}
    if precision == "int4":
        assert info == {"pipeline": exportable_family_of(result), "vision_weights": "int8", "embedding_table": "int8"}
        assert types == {"INT8"} and 1e-8 < v["summary"]["vision_nmse"] < 1e-2
        fp32 = exported.folder / "embedding.onnx"
        assert (result.folder / "embedding.onnx").stat().st_size < 0.3 * fp32.stat().st_size
        ops = {n.op_type for n in onnx.load(str(result.folder / "vision.onnx")).graph.node}
        assert "MatMulInteger" in ops  # int8 weights (the tiny tower's graph is mostly structure, so no size check)
    else:
        assert info["vision_weights"] == "fp32" and info["embedding_table"] == "fp16" and types == {"FLOAT16"}
        assert v["summary"]["vision_nmse"] < 1e-6


def exportable_family_of(result) -> str:
    return json.loads((result.folder / "genai_config.json").read_text())["model"]["type"]
