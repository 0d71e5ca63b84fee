"""How the app starts the engine: the program and arguments of `engine ARGS...`.

From a source or pip install the engine is `python -m engine` with the app's own
interpreter, so the child sees exactly the packages the app sees. In a frozen
PyInstaller bundle there is no separate Python; the bundle's executable runs the
engine when its first argument is `engine` (see app.main). EDGETUNE_ENGINE
overrides both with any command line, e.g. an engine in another environment
(`EDGETUNE_ENGINE="/opt/cuda-env/bin/engine"`) or a fake engine in tests.
"""

from __future__ import annotations

import os
import shlex
import sys

ENV_OVERRIDE = "EDGETUNE_ENGINE"


def engine_invocation(args: list[str]) -> tuple[str, list[str]]:
    """(program, arguments) that run `engine *args` as a child process."""
    override = os.environ.get(ENV_OVERRIDE, "").strip()
    if override:
        parts = shlex.split(override)
        return parts[0], parts[1:] + list(args)
    if getattr(sys, "frozen", False):
        return sys.executable, ["engine", *args]
    return sys.executable, ["-m", "engine", *args]


def display_command(args: list[str]) -> str:
    """The same command as a person would type it in a terminal (shown in the app, copyable)."""
    return "engine " + " ".join(shlex.quote(a) for a in args)
