"""A stand-in for `engine compare` in the Compare view's tests: the real output lines and compare.json, no training.

    EDGETUNE_ENGINE="python tests/app/fake_compare.py" ...   (then the app runs `compare CONFIG --methods ... --out DIR`)

Each method prints `[i/n] name (...)` and four `  step k/4  loss x` lines (FAKE_COMPARE_DELAY seconds apart,
default 0.02), then its row is added to DIR/compare.json with the engine's own Row and save_rows. A method
already completed in compare.json is kept, as the real command does; 'bitfit' fails (a refusal). SIGTERM
stops it between steps with exit 130, leaving the finished methods in compare.json (like Ctrl-C).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from engine.compare.row import Row
from engine.compare.runner import export_support, load_rows, save_rows
from engine.train.methods import get_method

stop = False


def _term(*_):
    global stop
    stop = True


def main() -> int:
    signal.signal(signal.SIGTERM, _term)
    ap = argparse.ArgumentParser()
    ap.add_argument("verb", choices=["compare"])
    ap.add_argument("config")
    ap.add_argument("--methods", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--heldout")
    ap.add_argument("--answers", action="store_true")
    args = ap.parse_args()
    if not Path(args.config).is_file():
        print(f"error: Config file '{args.config}' not found.", file=sys.stderr)
        return 2
    delay = float(os.environ.get("FAKE_COMPARE_DELAY", "0.02"))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = load_rows(out)
    methods = args.methods.split(",")
    for i, name in enumerate(methods, 1):
        if name in rows and rows[name].status == "completed":
            print(f"[{i}/{len(methods)}] {name}: kept (finished earlier)", flush=True)
            continue
        m = get_method(name)
        print(f"[{i}/{len(methods)}] {name} ({m.group}, lr 0.001, base none)", flush=True)
        row = Row(name, m.group, export=export_support(name), base_format="none", lr=0.001)
        if name == "bitfit":
            row.status, row.error = "refused", "method=bitfit cannot apply to this model: no bias parameters."
            print(f"  refused: {row.error}", flush=True)
        else:
            for step in range(1, 5):
                if stop:
                    return 130
                time.sleep(delay)
                loss = 3.0 - 0.4 * step - 0.1 * i
                print(f"  step {step}/4  loss {loss:.4f}", flush=True)
                row.losses.append((step, loss))
            row.status, row.trainable_params, row.total_params = "completed", 1000 * i, 100000
            row.peak_memory_gb, row.tokens_per_s, row.seconds, row.train_loss = 0.5, 800.0, 2.0, row.losses[-1][1]
            if args.heldout:
                row.base_heldout_loss, row.heldout_loss = 3.2, 2.0 + 0.1 * i
            if args.answers:
                row.answers_correct, row.answers_total, row.base_answers_correct = i, 5, 0
        rows[name] = row
        save_rows(out, rows, {"model": "fake", "lr_policy": "recommended"})
    print("\nwrote compare.md", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
