"""The parts of the VLM ONNX export that need no model: config fixes, preprocessing, refusals."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from engine.errors import EdgetuneError


def test_builder_child_flattens_per_layer_type_rope_parameters():
    from exporters.onnx.builder_child import flatten_rope_parameters

    text = SimpleNamespace(rope_parameters={"full_attention": {"rope_type": "default", "rope_theta": 1e6},
                                            "sliding_attention": {"rope_type": "default", "rope_theta": 1e4}})
    config = SimpleNamespace(text_config=text)
    assert flatten_rope_parameters(config)
    assert text.rope_parameters == {"rope_type": "default", "rope_theta": 1e6}
    assert (text.rope_theta, text.rope_local_base_freq) == (1e6, 1e4)
    flat = SimpleNamespace(rope_parameters={"rope_type": "default", "rope_theta": 1e4})  # a Llama's: left alone
    assert not flatten_rope_parameters(flat) and flat.rope_parameters == {"rope_type": "default", "rope_theta": 1e4}


def test_gemma3_processor_config_follows_the_models_image_processor():
    from exporters.onnx.vlm_gemma3 import processor_config

    config = {"vision_config": {"image_size": 896}}
    image = {"resample": 3, "rescale_factor": 1 / 255, "image_mean": [0.1, 0.2, 0.3], "image_std": [0.4, 0.5, 0.6]}
    ops = {t["operation"]["type"]: t["operation"].get("attrs") for t in processor_config(config, image)["processor"]["transforms"]}
    assert ops["Resize"] == {"interpolation": "CUBIC", "width": 896, "height": 896, "keep_aspect_ratio": 0}
    assert ops["Normalize"] == {"mean": [0.1, 0.2, 0.3], "std": [0.4, 0.5, 0.6]}
    assert ops["Permute3D"] == {"dims": [2, 0, 1]}
    assert processor_config(config, {})["processor"]["transforms"][1]["operation"]["attrs"]["interpolation"] == "LINEAR"


def _gemma3_folder(tmp_path, tokens=256, image=None):
    folder = tmp_path / "g3"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"architectures": ["Gemma3ForConditionalGeneration"],
                                                    "mm_tokens_per_image": tokens, "vision_config": {"image_size": 896}}))
    (folder / "preprocessor_config.json").write_text(json.dumps(image or {"size": {"height": 896, "width": 896},
                                                                          "image_mean": [0.5] * 3}))
    return folder


@pytest.mark.parametrize("tokens,image,message", [
    (64, None, "into 64 tokens .*always expands an image into 256"),
    (256, {"do_pan_and_scan": True, "image_mean": [0.5] * 3}, "do_pan_and_scan"),
    (256, {"size": {"height": 448, "width": 448}, "image_mean": [0.5] * 3}, "resizes to .*448.*896x896"),
])
def test_gemma3_the_runtime_cannot_run_is_refused_naming_why(tmp_path, tokens, image, message):
    from exporters.onnx.architectures import check_architecture

    with pytest.raises(EdgetuneError, match=message):
        check_architecture(_gemma3_folder(tmp_path, tokens, image))


def test_a_vlm_without_image_processor_settings_is_refused(tmp_path):
    from exporters.onnx.architectures import check_architecture

    folder = _gemma3_folder(tmp_path)
    (folder / "preprocessor_config.json").unlink()
    with pytest.raises(EdgetuneError, match="no image processor settings"):
        check_architecture(folder)


def test_a_tokenizer_without_gemma3_image_tokens_is_refused(tmp_path, bundled_model_dir):
    import shutil

    from exporters.onnx.architectures import check_architecture

    folder = _gemma3_folder(tmp_path)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(bundled_model_dir / name, folder / name)
    with pytest.raises(EdgetuneError, match="no <start_of_image>, <image_soft_token>, <end_of_image> token"):
        check_architecture(folder)


def test_the_text_backend_leaves_a_vlm_export_to_the_vision_one(tmp_path):
    from engine.chat.backends import backend_class

    (tmp_path / "genai_config.json").write_text(json.dumps({"model": {"type": "gemma3", "vision": {}, "decoder": {}}}))
    (tmp_path / "processor_config.json").write_text("{}")  # onnxruntime-extensions', not an HF processor
    assert backend_class(str(tmp_path)).name == "onnx-vlm"
    (tmp_path / "genai_config.json").write_text(json.dumps({"model": {"type": "llama", "decoder": {}}}))
    assert backend_class(str(tmp_path)).name == "onnx"


def test_qwen2_5_vl_vision_graph_matches_transformers_on_any_grid(tmp_path, bundled_model_dir):
    """Traced on one 4x4 patch grid, the graph computes rotary positions, window order and masks for any
    grid: non-square, two frames, edge windows smaller than the rest (window = 2x2 merged units here)."""
    import numpy as np
    import onnxruntime as ort
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    from engine.vision.tiny_qwen2_vl import build_tiny_qwen2_vl
    from exporters.onnx.vlm_graphs import export_graph
    from exporters.onnx.vlm_qwen2_5_vl import vision

    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(
        str(build_tiny_qwen2_vl(tmp_path / "q", bundled_model_dir, version="qwen2_5_vl")), dtype=torch.float32).eval()
    visual = model.model.visual
    visual.config.window_size = visual.window_size = 2 * visual.config.patch_size * visual.config.spatial_merge_size
    module, example, axes = vision(model)
    export_graph(module, tuple(example.values()), tmp_path / "vision.onnx", inputs={k: axes.get(k, {}) for k in example},
                 outputs={"image_features": axes["image_features"]})
    session = ort.InferenceSession(str(tmp_path / "vision.onnx"), providers=["CPUExecutionProvider"])
    torch.manual_seed(0)
    for grid in ([1, 4, 4], [1, 4, 6], [1, 6, 10], [2, 4, 8]):
        thw = torch.tensor([grid])
        patches = torch.randn(int(thw.prod()), example["pixel_values"].shape[1])
        with torch.no_grad():
            ref = visual(patches, grid_thw=thw).pooler_output.numpy()
        got = session.run(None, {"pixel_values": patches.numpy(), "image_grid_thw": thw.numpy()})[0]
        assert got.shape == ref.shape and np.abs(got - ref).max() < 1e-4, grid


def test_qwen2_5_vl_pad_id_that_prompts_contain_is_replaced(tmp_path, bundled_model_dir):
    """The runtime masks `input_ids != pad_token_id`: SmolLM2's pad (<|im_end|>) is in every prompt."""
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    from engine.vision.tiny_qwen2_vl import build_tiny_qwen2_vl
    from exporters.onnx.vlm_qwen2_5_vl import genai_extras

    folder = build_tiny_qwen2_vl(tmp_path / "q", bundled_model_dir, version="qwen2_5_vl")
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(str(folder), dtype=torch.float32)
    keys, vision_keys = genai_extras(model, folder)
    assert keys["pad_token_id"] == 0  # <|endoftext|> in SmolLM2's vocabulary, as a real Qwen pads
    assert keys["vision_start_token_id"] == model.config.vision_start_token_id
    assert vision_keys["window_size"] == model.config.vision_config.window_size


def test_qwen2_5_vl_export_caps_the_image_tokens_of_big_pictures():
    from exporters.onnx.vlm_qwen2_5_vl import MAX_IMAGE_TOKENS, processor_config

    real = {"min_pixels": 3136, "max_pixels": 12845056, "patch_size": 14, "merge_size": 2, "temporal_patch_size": 2,
            "image_mean": [0.5] * 3, "image_std": [0.5] * 3}  # Qwen2.5-VL-3B/7B's preprocessor_config.json
    resize = processor_config({}, real)["processor"]["transforms"][2]["operation"]["attrs"]
    assert resize["max_pixels"] == MAX_IMAGE_TOKENS * 28 * 28 and resize["min_pixels"] == 3136
    tiny = {**real, "min_pixels": 1024, "max_pixels": 1024, "patch_size": 8}  # below the cap: unchanged
    assert processor_config({}, tiny)["processor"]["transforms"][2]["operation"]["attrs"]["max_pixels"] == 1024
