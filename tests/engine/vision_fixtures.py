"""Session fixtures for vision-language tests: a tiny random Idefics3 VLM, shapes data, one trained run.

Import the fixtures into a test module (`from tests.engine.vision_fixtures import *`).
"""

from __future__ import annotations

import pytest

__all__ = ["tiny_vlm_dir", "shapes_dir", "vlm_run"]


@pytest.fixture(scope="session")
def tiny_vlm_dir(tmp_path_factory, bundled_model_dir):
    """Idefics3: 2-layer 64-wide SigLIP-style tower + connector + a 2-layer 64-wide Llama, SmolLM2's tokenizer."""
    from engine.vision.tiny_vlm import build_tiny_vlm

    return build_tiny_vlm(tmp_path_factory.mktemp("tiny-vlm") / "model", bundled_model_dir, random_lm=True)


@pytest.fixture(scope="session")
def shapes_dir(tmp_path_factory):
    """16 training + 4 held-out coloured-shape questions (ShareGPT and OpenAI-parts layouts)."""
    from engine.vision.shapes import write_shapes

    out = tmp_path_factory.mktemp("shapes")
    write_shapes(out, train=16, held_out=4)
    return out


@pytest.fixture(scope="session")
def vlm_run(tmp_path_factory, tiny_vlm_dir, shapes_dir):
    """(run folder, events) of a 4-step LoRA run on the tiny VLM."""
    from engine.config import load_config
    from tests.engine.run_helpers import train

    out = tmp_path_factory.mktemp("vlm-run") / "run"
    cfg = load_config(None, [f"model={tiny_vlm_dir}", f"data={shapes_dir / 'train.jsonl'}", f"output_dir={out}",
                             "method=lora", "batch_size=4", "max_len=64", "lr=1e-2", "max_steps=4", "optim.warmup_ratio=0",
                             "lora.dropout=0", "train.backend=hf", "quant.compute_dtype=fp32"])
    result, events, _ = train(cfg)
    assert result["status"] == "completed", events[-3:]
    return out, events
