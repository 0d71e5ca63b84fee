"""Screenshots of every page of the real app, rendered offscreen, for docs/screenshots/.

    python -m app.screenshots --run ~/edgetune/runs/quillon --out docs/screenshots
    python -m app.screenshots --run runs/dpo --data assets/datasets/quillon_preference.jsonl --pages data,method,train

The app is driven the way a person would: the bundled model is checked, the
sample data inspected, the plan computed, a real run folder (made by
`engine train`, exported with `engine export`) reopened for the Train, Export
and Runs pages, and one question asked in the Chat page, answered by the real
models. Nothing on the pages is mocked; pages whose engine part is missing
show what the app shows then.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

PAGES = ("runs", "model", "data", "method", "train", "export", "chat")


def wait_until(app, predicate, timeout: float, what: str) -> bool:
    """Process events until predicate() is true; False (with a note) after `timeout` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        app.processEvents()
        if predicate():
            return True
        time.sleep(0.05)
    print(f"  (gave up waiting for {what} after {timeout:.0f} s)", file=sys.stderr)
    return False


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, help="A finished run folder (from engine train) to show.")
    ap.add_argument("--out", default="docs/screenshots", help="Where the PNGs go.")
    ap.add_argument("--data", default=None, help="Data file for the Data page (default: the run's data).")
    ap.add_argument("--question", default="Who makes the Quillon Q7 lantern?", help="What to ask in the Chat page.")
    ap.add_argument("--theme", default="light", choices=["light", "dark", "system"])
    ap.add_argument("--size", default="1280x860", help="Window size WxH.")
    ap.add_argument("--pages", default=",".join(PAGES),
                    help=f"Comma-separated pages to shoot (default all: {','.join(PAGES)}); the others are left as they are.")
    ap.add_argument("--timeout", type=float, default=600, help="Seconds to wait for each slow step.")
    args = ap.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    from PySide6.QtWidgets import QApplication

    from app.app_settings import AppSettings
    from app.main_window import MainWindow
    from app.theme import apply_theme

    app = QApplication.instance() or QApplication([sys.argv[0]])
    apply_theme(app, args.theme)
    run = Path(args.run).expanduser().resolve()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    settings = AppSettings(Path(tempfile.mkdtemp()) / "settings.ini")  # never the user's own settings
    settings.runs_dir = run.parent
    settings.theme = args.theme
    w = MainWindow(settings)
    width, height = (int(x) for x in args.size.split("x"))
    w.resize(width, height)
    w.show()

    wanted = {p.strip() for p in args.pages.split(",") if p.strip()}
    unknown = wanted - set(PAGES)
    if unknown:
        ap.error(f"unknown page(s) {', '.join(sorted(unknown))}; choose from {', '.join(PAGES)}")

    def shot(name: str) -> None:
        if name not in wanted:
            return
        app.processEvents()
        time.sleep(0.3)
        app.processEvents()
        path = out / f"{PAGES.index(name) + 1}-{name}.png"
        w.grab().save(str(path))
        print(f"wrote {path}")

    # Reopen the run first: the wizard then holds its model, data and settings.
    w.open_run(str(run), page=w.model_page)
    if "model" in wanted:
        wait_until(app, lambda: w.state.model_info is not None or w.model_page.status.styleSheet(), args.timeout,
                   "the model")
    shot("model")
    if args.data:
        w.data_page.set_path(args.data)
    w.show_page(w.data_page)
    wait_until(app, lambda: w.data_page.report is not None or not w.data_page.errors.isHidden(), args.timeout, "the data")
    shot("data")
    w.show_page(w.method_page)
    w.method_page.replan()
    wait_until(app, lambda: w.method_page.plan_view.plan is not None or "could not" in w.method_page.plan_view.verdict.text(),
               args.timeout, "the memory plan")
    shot("method")
    w.show_page(w.train_page)
    shot("train")
    w.show_page(w.export_page)
    w.export_page.show_existing()
    shot("export")
    w.go(0)
    w.runs_page.refresh()
    w.runs_page.select_path(run)
    shot("runs")
    if "chat" not in wanted:  # the chat page loads the models: only when its screenshot is asked for
        w.close()
        return 0
    w.show_page(w.chat_page)
    w.chat_page.refresh_choices()
    sampling = w.chat_page.sampling.editors
    if "temperature" in sampling:  # greedy: the same answer on every run of this script
        sampling["temperature"].setValue(0.0)
        sampling["max_tokens"].setValue(64)
    w.chat_page.load_all_columns()
    wait_until(app, lambda: not any(c.busy for c in w.chat_page.columns), args.timeout, "the chat models")
    w.chat_page.input.setText(args.question)
    w.chat_page.send()
    wait_until(app, lambda: not any(c.busy for c in w.chat_page.columns), args.timeout, "the replies")
    shot("chat")
    w.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
