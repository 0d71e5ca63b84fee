"""Session fixtures for vision-language tests: a tiny random VLM of each family, shapes data, one trained run.

Import the fixtures into a test module (`from tests.engine.vision_fixtures import *`). Every test
that takes `tiny_vlm_dir` (or `vlm_run`) runs once per family in VLM_FAMILIES; TINY says what
each family's tiny model looks like, so one test body checks them all.
"""

from __future__ import annotations

import pytest

__all__ = ["vlm_family", "tiny_vlm_dir", "shapes_dir", "vlm_run", "TINY"]

# what a tiny model (2-layer 64-wide vision tower, 32 px images in 8 px patches) of each family looks like
TINY = {
    "idefics3": dict(image_tokens=4,  # 16 patches, pixel shuffle 2x2
                     pixel_shape=(2, 1, 3, 32, 32), lm_path="model.text_model", vision_path="model.vision_model",
                     projector_path="model.connector", projector_linear="model.connector.modality_projection.proj",
                     projector_type="idefics3"),
    "llava": dict(image_tokens=16,  # 16 patches, CLS dropped (vision_feature_select_strategy=default)
                  pixel_shape=(2, 3, 32, 32), lm_path="model.language_model", vision_path="model.vision_tower",
                  projector_path="model.multi_modal_projector", projector_linear="model.multi_modal_projector.linear_1",
                  projector_type="mlp"),
}


@pytest.fixture(scope="session", params=sorted(TINY))
def vlm_family(request) -> str:
    return request.param


@pytest.fixture(scope="session")
def tiny_vlm_dir(tmp_path_factory, bundled_model_dir, vlm_family):
    """The family's tiny random VLM: a 2-layer 64-wide vision tower + projector + a 2-layer 64-wide Llama, SmolLM2's tokenizer."""
    from engine.vision.tiny_vlm import tiny_builder

    return tiny_builder(vlm_family)(tmp_path_factory.mktemp(f"tiny-{vlm_family}") / "model", bundled_model_dir,
                                    random_lm=True)


@pytest.fixture(scope="session")
def shapes_dir(tmp_path_factory):
    """16 training + 4 held-out coloured-shape questions (ShareGPT and OpenAI-parts layouts)."""
    from engine.vision.shapes import write_shapes

    out = tmp_path_factory.mktemp("shapes")
    write_shapes(out, train=16, held_out=4)
    return out


@pytest.fixture(scope="session")
def vlm_run(tmp_path_factory, tiny_vlm_dir, shapes_dir, vlm_family):
    """(run folder, events) of a 4-step LoRA run on the family's tiny VLM."""
    from engine.config import load_config
    from tests.engine.run_helpers import train

    out = tmp_path_factory.mktemp(f"vlm-run-{vlm_family}") / "run"
    cfg = load_config(None, [f"model={tiny_vlm_dir}", f"data={shapes_dir / 'train.jsonl'}", f"output_dir={out}",
                             "method=lora", "batch_size=4", "max_len=64", "lr=1e-2", "max_steps=4", "optim.warmup_ratio=0",
                             "lora.dropout=0", "train.backend=hf", "quant.compute_dtype=fp32"])
    result, events, _ = train(cfg)
    assert result["status"] == "completed", events[-3:]
    return out, events
