"""`engine export TARGET ...`: a registry of exporters, each with its own CLI module.

Each target module (e.g. exporters.gguf.cli) defines `add_parser(subparsers)` and
sets `run` on its parser; importing it must stay cheap (no torch at import time).
"""

from __future__ import annotations

import importlib

TARGETS = {
    "gguf": "exporters.gguf.cli",
    "onnx": "exporters.onnx.cli",
}


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="Export a run or model to GGUF (llama.cpp/Ollama) or ONNX (on-device).")
    tsub = p.add_subparsers(dest="export_target", metavar="TARGET")
    for name, module in TARGETS.items():
        try:
            importlib.import_module(module).add_parser(tsub)
        except ModuleNotFoundError as e:
            if e.name and e.name.startswith("exporters"):
                continue  # target not built yet
            raise
    p.set_defaults(run=lambda args: (p.print_help(), 2)[1])
