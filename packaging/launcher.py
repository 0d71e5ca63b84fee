"""PyInstaller entry point: the frozen `edgetune` executable.

`edgetune` starts the desktop app; `edgetune engine ...` runs the headless engine
(the app starts its training/export children that way inside a bundle, where
there is no separate Python to run `python -m engine`).
"""

import multiprocessing
import sys

from app.main import main

if __name__ == "__main__":
    multiprocessing.freeze_support()  # datasets/torch may start worker processes
    sys.exit(main())
