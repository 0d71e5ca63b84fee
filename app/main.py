"""`edgetune`: start the desktop app.

    edgetune                 # the wizard
    edgetune --check         # start, show the main window, print the start-up time, quit
    edgetune engine ARGS     # run the headless engine with this app's Python (what a
                             # frozen bundle uses to start its child processes)

Console script declared in pyproject.toml (`edgetune = "app.main:main"`).
"""

from __future__ import annotations

import sys
import time

T0 = time.perf_counter()


def run_engine(argv: list[str]) -> int:
    """`edgetune engine ...` == `engine ...` (one executable serves both in a bundle)."""
    from engine.cli.main import main as engine_main

    return engine_main(argv)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["engine"]:
        return run_engine(argv[1:])
    if argv[:1] in (["-h"], ["--help"]):
        print(__doc__)
        return 0
    check = "--check" in argv

    from app.xcb_check import check_xcb

    problem = check_xcb()  # before Qt loads its platform plugin: a clear message instead of Qt's abort
    if problem:
        print(problem, file=sys.stderr)
        return 1

    from PySide6.QtCore import QTimer
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    from app.app_settings import AppSettings
    from app.main_window import MainWindow
    from app.theme import apply_theme
    from engine import __version__

    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setApplicationName("edgetune")
    app.setOrganizationName("edgetune")
    app.setApplicationVersion(__version__)
    from app.app_icon import icon_path

    if icon_path():
        app.setWindowIcon(QIcon(str(icon_path())))
    settings = AppSettings()
    apply_theme(app, settings.theme)
    window = MainWindow(settings)
    window.show()
    if check:
        def report() -> None:
            print(f"edgetune {__version__}: main window shown after {time.perf_counter() - T0:.2f} s", flush=True)
            window.close()
            app.quit()

        QTimer.singleShot(0, report)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
