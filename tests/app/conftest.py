"""App tests run headless (QT_QPA_PLATFORM=offscreen) with private settings and a fake engine on demand."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("MPLBACKEND", "QtAgg")

FAKE_ENGINE = Path(__file__).with_name("fake_engine.py")


@pytest.fixture
def settings(tmp_path):
    from app.app_settings import AppSettings

    s = AppSettings(tmp_path / "settings.ini")
    s.runs_dir = tmp_path / "runs"
    return s


@pytest.fixture
def state(qapp):
    from app.wizard_state import WizardState

    return WizardState()


@pytest.fixture
def fake_engine(monkeypatch):
    """Route every engine call of the app to tests/app/fake_engine.py."""
    monkeypatch.setenv("EDGETUNE_ENGINE", f"{shlex.quote(sys.executable)} {shlex.quote(str(FAKE_ENGINE))}")
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[2]) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return monkeypatch


@pytest.fixture
def stage_state(qapp, monkeypatch):
    """A WizardState on a run config with `stage`: the engine's, or tests/app/staged_schema.py's stand-in."""
    from tests.app.staged_schema import install

    install(monkeypatch)
    from app.wizard_state import WizardState

    return WizardState()
