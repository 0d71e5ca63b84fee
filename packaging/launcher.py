"""PyInstaller entry point: the frozen `edgetune` executable.

`edgetune` starts the desktop app; `edgetune engine ...` runs the headless engine
(the app starts its training/export children that way inside a bundle, where
there is no separate Python to run `python -m engine`). The exporters start
helpers as `sys.executable -m MODULE ...` (llama.cpp's vocab probe, ONNX Runtime
GenAI's model builder); in a bundle sys.executable is this file, so `-m` is
handled here the way python would.
"""

import multiprocessing
import runpy
import sys


def run_module(argv: list) -> None:
    """`edgetune -m MODULE ARGS...` == `python -m MODULE ARGS...`."""
    module = argv[0]
    sys.argv = [module, *argv[1:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    multiprocessing.freeze_support()  # datasets/torch may start worker processes
    if sys.argv[1:2] == ["-m"] and len(sys.argv) > 2:
        run_module(sys.argv[2:])
        sys.exit(0)
    from app.main import main

    sys.exit(main())
