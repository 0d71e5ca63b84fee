"""The plan panel's run line names a VLM's parts (from `engine plan --json`'s `vision`)."""

from __future__ import annotations

import json


def test_run_line_names_the_vision_encoder_projector_and_lm(tmp_path):
    from app.plan_view import run_line
    from engine.config import load_config
    from engine.plan import build_plan
    from engine.plan.gpu_catalog import Target
    from tests.engine.test_plan_vision import SMOLVLM_256M, SMOLVLM_PROCESSOR

    (tmp_path / "config.json").write_text(json.dumps(SMOLVLM_256M))
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(SMOLVLM_PROCESSOR))
    plan = build_plan(load_config(None, [f"model={tmp_path}", "method=lora", "lora.train_projector=true"]),
                      Target("cuda", "test", 24.0)).to_dict()
    line = run_line(plan)
    assert "vision encoder 86.4M + projector 7.1M (projector), LM 163.0M, 1088 image tokens per image" in line
    assert run_line(dict(plan, vision={})) == line.split("; vision encoder")[0]  # a text model's line
