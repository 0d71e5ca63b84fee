"""`engine export onnx SOURCE --precision int4|int8|fp16|fp32 --target cpu|mobile|cuda|dml [--out DIR]`.

    engine export onnx smollm2-135m-instruct --precision int4
    engine export onnx runs/quickstart --precision int4 --target mobile
    engine export onnx runs/quickstart --precision fp16 --target cuda --events -
    engine export onnx runs/shapes-gemma3 --precision int4          # a Gemma 3 / Qwen2.5-VL run: images too

Imports nothing heavy at module level: `engine --help` must not load torch or onnx.
"""

from __future__ import annotations

import sys

from engine.errors import EdgetuneError
from engine.formats.onnx_targets import PRECISIONS, TARGETS, supported_pairs


def add_parser(sub) -> None:
    """Add `onnx` to the `engine export` subcommands."""
    p = sub.add_parser(
        "onnx", help="ONNX Runtime GenAI model (KV cache, int4) for CPUs, phones and GPUs, verified against the HF model.",
        description="Build an ONNX Runtime GenAI model folder with onnxruntime_genai.models.builder, check it against "
                    "the Hugging Face model (tokenizer, logits, end-of-turn) and time it. Supported precision/target "
                    f"pairs: {supported_pairs()}. A Gemma 3 or Qwen2.5-VL vision-language model exports as ONNX Runtime "
                    "GenAI's multimodal pipeline (vision.onnx + embedding.onnx + the decoder + processor_config.json), "
                    "verified with images through onnxruntime-genai; other VLMs are refused before any work.",
    )
    p.add_argument("source", help="A run folder (merged first) or any model spec: smollm2-135m-instruct, an HF folder, a .gguf.")
    p.add_argument("--precision", default=None, choices=list(PRECISIONS),
                   help=" ".join(f"{x.name}: {x.help}" for x in PRECISIONS.values())
                        + " Default: the run's export.onnx_precision, else int4.")
    p.add_argument("--target", "--device", dest="target", default=None, choices=list(TARGETS),
                   help=" ".join(f"{t.name}: {t.help}" for t in TARGETS.values())
                        + " Default: the run's export.onnx_device when --precision is not given either, else cpu "
                          "(cuda for fp16). Every target builds on any machine.")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="Export folder (default: <run>/exports/onnx-<precision>[-<target>], or "
                        "./exports/<model>/onnx-... for a model spec).")
    p.add_argument("--no-verify", action="store_true", help="Skip the check against the HF model (it loads the model in fp32).")
    p.add_argument("--no-speed", action="store_true", help="Skip timing a short generation at the end.")
    p.add_argument("--events", default=None, metavar="PATH|-", help="Also write JSON-lines events to PATH (- = stdout; text then goes to stderr).")
    p.set_defaults(run=run)


def run(args) -> int:
    from engine.events import EventSink, open_events_target
    from exporters.onnx.exporter import OnnxExporter

    text_out = sys.stderr if args.events == "-" else sys.stdout
    sink = EventSink(open_events_target(args.events))

    def say(line: str) -> None:
        print(line, file=text_out, flush=True)

    precision, target = _precision_and_target(args)
    try:
        result = OnnxExporter(args.source, precision=precision, target=target, out=args.out,
                              verify=not args.no_verify, speed=not args.no_speed, sink=sink, say=say).run()
    except BaseException as e:
        sink.emit("error", kind=_error_kind(e), message=str(e) or type(e).__name__,
                  hint="" if isinstance(e, EdgetuneError) else "This is a bug: please report it with the traceback.")
        raise
    finally:
        sink.close()
    say(f"size: {result.size_mb:.1f} MB   build: {result.build_s:.1f} s"
        + (f"   speed: {result.speed['tokens_per_s']} tokens/s (greedy decode, {result.speed['provider']}, "
           f"median of {result.speed['runs']})" if result.speed else ""))
    return 0


def _precision_and_target(args) -> tuple[str, str | None]:
    """--precision/--target, else what the run folder's config.yaml asks for (export.onnx_*), else int4 on cpu."""
    from pathlib import Path

    from engine.runs import is_run_dir

    if args.precision is None and args.target is None and is_run_dir(Path(args.source)):
        try:
            from engine.config import load_config

            e = load_config(Path(args.source) / "config.yaml").export
            return e.onnx_precision, e.onnx_device
        except EdgetuneError:  # an older or hand-edited config.yaml must not block an export
            pass
    return args.precision or "int4", args.target


def _error_kind(e: BaseException) -> str:
    """The `kind` field of the error event."""
    if isinstance(e, KeyboardInterrupt):
        return "interrupted"
    if isinstance(e, EdgetuneError):
        return "disk" if "disk space" in str(e) else "model"
    return "internal"
