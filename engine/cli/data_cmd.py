"""`engine data inspect FILE --model M`: format, counts, token lengths and a masked sample."""

from __future__ import annotations

import json
import sys


def add_parser(sub) -> None:
    p = sub.add_parser("data", help="Inspect a dataset before training.")
    dsub = p.add_subparsers(dest="data_command", metavar="ACTION")
    ins = dsub.add_parser(
        "inspect",
        help="Show format, record count, token-length stats, which training stages can use the file, and a rendered "
             "sample (a preference pair side by side) with masked parts marked.",
        description="Read a data file the way `engine train` will and report what the model will learn from.",
    )
    ins.add_argument("file", help="Data file (.jsonl/.json/.csv/.parquet) or saved dataset folder.")
    ins.add_argument("--model", default="smollm2-135m-instruct", help="Model whose tokenizer and chat template to use.")
    ins.add_argument("--max-len", type=int, default=1024, help="Sequence length to check against (sequence.max_len).")
    ins.add_argument("--format", default="auto", help="Record format (data.format); auto-detected by default.")
    ins.add_argument("--columns", default=None, help="Column mapping as YAML, e.g. '{instruction: q, output: a}'.")
    ins.add_argument("--system-prompt", default=None, help="System prompt for conversations without one.")
    ins.add_argument("--chat-template", default=None, metavar="NAME|FILE",
                     help="Chat template instead of the model's own (model.chat_template): a built-in name "
                          "(plain, chatml, llama3, gemma, phi3), a Jinja file or the template text.")
    ins.add_argument("--loss-on", choices=["assistant", "all"], default="assistant",
                     help="Tokens of a chat record that carry loss (data.loss_on): the answers, or all.")
    ins.add_argument("--on-error", choices=["abort", "skip"], default="abort", help="Malformed records: abort or skip.")
    ins.add_argument("--sample", type=int, default=0, help="Which record to render as the sample (0-based).")
    ins.add_argument("--json", action="store_true", help="Print the report as JSON.")
    ins.set_defaults(run=run_inspect)
    p.set_defaults(run=lambda args: (p.print_help(), 2)[1])


def run_inspect(args) -> int:
    from engine.config import load_config
    from engine.data.inspect import format_report, inspect_data
    from engine.models.loading import load_tokenizer

    if _has_images(args.file):  # image + text records: engine/vision/inspect.py
        return _inspect_vision(args)
    # The same keys and checks as a run config, so a mapping that inspects fine also trains.
    overrides = [f"data.format={args.format}"] + ([f"data.columns={args.columns}"] if args.columns else [])
    cfg = load_config(None, overrides + ([f"model.chat_template={args.chat_template}"] if args.chat_template else []))
    tokenizer = load_tokenizer(args.model, cfg.model.chat_template)
    report = inspect_data(args.file, tokenizer, args.max_len, cfg.data.format, cfg.data.columns, args.system_prompt,
                          args.on_error, args.sample, args.loss_on)
    from engine.train.recipes import stages_for_kind

    report.stages = stages_for_kind(report.kind)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(format_report(report, color=sys.stdout.isatty()))
    return 0


def _has_images(path: str) -> bool:
    from pathlib import Path

    from engine.data.readers import read_records
    from engine.vision.data import is_vision_record

    if not Path(path).is_file():
        return False
    for _, rec in read_records(path):
        return is_vision_record(rec)
    return False


def _inspect_vision(args) -> int:
    from engine.models import resolve_model
    from engine.vision import is_vlm_folder
    from engine.vision.inspect import format_vision_report, inspect_vision

    folder = resolve_model(args.model, purpose="tokenizer").path
    report = inspect_vision(args.file, folder if is_vlm_folder(folder) else None, args.max_len, args.system_prompt,
                            args.on_error, args.sample)
    print(json.dumps(report.to_dict(), indent=2) if args.json else format_vision_report(report))
    return 0
