"""`engine`: the headless edgetune CLI.

    engine --help
    engine data inspect assets/datasets/acme_facts.jsonl --model smollm2-135m-instruct
    engine train assets/presets/cpu_quickstart.yaml lr=1e-3

Subcommands are a registry of modules; each module adds its parser and a
`run(args)` function. Only the chosen subcommand's heavy imports (torch,
transformers) ever happen, inside `run`, so `engine --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from engine import __version__
from engine.errors import EdgetuneError

# name -> module with add_parser(subparsers) and run(args) -> int
COMMANDS = {
    "data": "engine.cli.data_cmd",
    "train": "engine.cli.train_cmd",
    "merge": "engine.cli.merge_cmd",
    "eval": "engine.cli.eval_cmd",
    "compare": "engine.cli.compare_cmd",
    "score": "engine.cli.score_cmd",
    "export": "engine.cli.export_cmd",
    "chat": "engine.cli.chat_cmd",
    "serve": "engine.cli.serve_cmd",
    "plan": "engine.cli.plan_cmd",
    "config": "engine.cli.config_cmd",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="engine",
        description="edgetune engine: fine-tune an open LLM with QLoRA, export it to GGUF/ONNX and chat with it.",
    )
    parser.add_argument("--version", action="version", version=f"edgetune {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module in COMMANDS.items():
        try:
            importlib.import_module(module).add_parser(sub)
        except ModuleNotFoundError as e:
            if e.name != module:
                raise  # a real missing dependency, not a command still being built
    return parser


def _terminate_as_interrupt() -> None:
    """SIGTERM (what the desktop app's Cancel sends) unwinds like Ctrl-C, so every command's cleanup runs:
    temp files are removed, nothing partial stays at a final path. Training installs its own handler
    (finish the step, checkpoint) while it runs."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        def handler(signum, frame):
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, handler)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 0 if args.command is None else 2
    _terminate_as_interrupt()
    try:
        return int(args.run(args) or 0)
    except EdgetuneError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `engine config --fields | head`: the reader left; say nothing more
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
