"""How the app spells the engine command: python -m engine, a frozen bundle, or EDGETUNE_ENGINE."""

from __future__ import annotations

import sys

from app.engine_command import display_command, engine_invocation


def test_default_is_this_python_running_the_engine_module(monkeypatch):
    monkeypatch.delenv("EDGETUNE_ENGINE", raising=False)
    assert engine_invocation(["train", "x.yaml"]) == (sys.executable, ["-m", "engine", "train", "x.yaml"])


def test_frozen_bundle_runs_itself_with_engine(monkeypatch):
    monkeypatch.delenv("EDGETUNE_ENGINE", raising=False)
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    assert engine_invocation(["plan"]) == (sys.executable, ["engine", "plan"])


def test_override_and_display(monkeypatch):
    monkeypatch.setenv("EDGETUNE_ENGINE", "'/opt/my env/bin/engine' --quiet")
    assert engine_invocation(["train"]) == ("/opt/my env/bin/engine", ["--quiet", "train"])
    assert display_command(["train", "a b.yaml", "lr=1e-3"]) == "engine train 'a b.yaml' lr=1e-3"


def test_edgetune_engine_subcommand_is_the_engine_cli(capsys):
    from app.main import main

    assert main(["engine", "config", "--fields"]) == 0
    assert "optim.lr" in capsys.readouterr().out
