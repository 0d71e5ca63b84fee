"""The classic three-stage pipeline on the bundled model, end to end through the CLI a user types:

SFT (the quickstart preset, a few steps) -> a reward model on the bundled preference pairs, started
from the SFT run -> GRPO from the SFT run with that reward model as its only reward -> the reward
model scores the policy's greedy replies to the held-out prompts higher than the SFT model's.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HELDOUT = REPO / "assets/datasets/brief_heldout.jsonl"


@pytest.mark.slow
def test_sft_then_reward_model_then_grpo_raises_the_held_out_reward(bundled_model_dir, tmp_path, capsys):
    from engine.cli.main import main

    sft, rm, grpo = tmp_path / "sft", tmp_path / "rm", tmp_path / "grpo"
    assert main(["train", str(REPO / "assets/presets/cpu_quickstart.yaml"), f"output_dir={sft}", "max_steps=4",
                 "--no-progress"]) == 0
    assert main(["train", str(REPO / "assets/presets/cpu_dpo.yaml"), "stage=rm", f"model={sft}", f"output_dir={rm}",
                 "--no-progress"]) == 0
    assert main(["eval", str(rm), "--data", str(HELDOUT), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["reward"]["accuracy"] >= 0.8  # the RM ranks unseen pairs

    assert main(["train", str(REPO / "assets/presets/cpu_grpo.yaml"), f"model={sft}", f"rl.rewards=[rm:{rm}]",
                 f"output_dir={grpo}", "max_steps=10", "lr=1e-3", "--no-progress"]) == 0
    events = [json.loads(line) for line in (grpo / "events.jsonl").read_text().splitlines()]
    assert Path(events[0]["config"]["model"]["name_or_path"]).resolve() == sft.resolve()
    assert main(["eval", str(grpo), "--data", str(HELDOUT), "--answers", "--json"]) == 0
    scored = json.loads(capsys.readouterr().out)["reply_rewards"]
    assert scored["replies"] == 10
    assert scored["mean"]["tuned"] > scored["mean"]["base"]  # base = the SFT run the policy started from
