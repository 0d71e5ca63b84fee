"""Proof it learned: the CPU quickstart teaches the bundled model facts it answers on held-out paraphrases."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.mark.slow
def test_quickstart_answers_heldout_questions_the_base_gets_wrong(tmp_path):
    run = tmp_path / "quickstart"
    out = subprocess.run([sys.executable, "-m", "engine", "train", "assets/presets/cpu_quickstart.yaml",
                          f"output_dir={run}", "--no-progress"], capture_output=True, text=True, cwd=REPO, timeout=3600)
    assert out.returncode == 0, out.stderr[-3000:]
    from engine.train.evaluate import quiz

    items = quiz(str(run), str(REPO / "assets/datasets/quillon_heldout.jsonl"))
    base = sum(i.correct["base"] for i in items)
    tuned = sum(i.correct["tuned"] for i in items)
    report = "\n".join(f"{i.expect!r}: base={i.answers['base'][:60]!r} tuned={i.answers['tuned'][:60]!r}" for i in items)
    assert tuned >= 8, report
    assert base <= 2, report
