"""`engine export gguf SOURCE`: GGUF files for llama.cpp / Ollama / LM Studio, verified.

    engine export gguf smollm2-135m-instruct --quant q8_0
    engine export gguf runs/quillon --quant q8_0,q4_k_m,f16 --out exports/quillon
    engine export gguf runs/quillon --quant auto --events -      # JSON progress on stdout
    engine export gguf runs/quillon --adapter                    # + a LoRA GGUF for llama.cpp --lora

SOURCE is a run folder (its merged model, merged on demand), a merged/HF folder, a
.gguf, a hub id or the bundled model. Nothing is cloned, compiled or downloaded:
our converter writes f32/f16/bf16/q8_0 and llama.cpp's quantizer (inside
llama-cpp-python) makes the k-quants. Importing this module stays cheap; torch,
transformers and llama_cpp load inside `run`.
"""

from __future__ import annotations

import sys

from engine.config.quant_types import GGUF_TYPES

EXAMPLE = "engine export gguf smollm2-135m-instruct --quant q8_0,q4_k_m,f16"


def add_parser(sub) -> None:
    """Add the `gguf` target to `engine export`."""
    p = sub.add_parser(
        "gguf",
        help="Export to GGUF (llama.cpp, Ollama, LM Studio) and verify it with llama.cpp.",
        description="Convert a run or model to GGUF with edgetune's own converter, quantise with llama.cpp's "
                    "quantizer, verify token ids, logits and end-of-turn behaviour against the HF model, and "
                    f"write an Ollama Modelfile. Example: {EXAMPLE}",
    )
    p.add_argument("source", help="Run folder, merged/HF model folder, .gguf file, hub id or 'smollm2-135m-instruct'.")
    p.add_argument("--quant", default=None,
                   help="Comma-separated GGUF types: " + ", ".join(GGUF_TYPES) + ". f32/f16/bf16/q8_0 are written "
                        "directly, the rest by llama.cpp's quantizer. 'auto' measures q4_k_m, q5_k_m, q6_k, q8_0 and "
                        "keeps the smallest within --max-kl/--min-top1. Default: the run's export.gguf_quant, else auto.")
    p.add_argument("--out", default=None, help="Output folder (default: <run>/exports, or ./exports/<model name>).")
    p.add_argument("--no-verify", action="store_true", help="Skip the llama.cpp checks (token ids, logits, stopping).")
    p.add_argument("--no-modelfile", action="store_true", help="Do not write an Ollama Modelfile.")
    p.add_argument("--adapter", action="store_true",
                   help="Also write the run's LoRA as adapter-f16.gguf (with base-f16.gguf) for llama.cpp --lora "
                        "(llama family).")
    p.add_argument("--pre-tokenizer", default=None,
                   help="Force llama.cpp's pre-tokenizer name (tokenizer.ggml.pre) when it cannot be detected.")
    p.add_argument("--name", default=None, help="Model name for the Modelfile's `ollama create` line.")
    p.add_argument("--max-kl", type=float, default=None, help="--quant auto: largest mean KL divergence accepted (0.05).")
    p.add_argument("--min-top1", type=float, default=None, help="--quant auto: smallest top-1 agreement accepted (0.90).")
    p.add_argument("--events", default=None, help="Write JSON-lines events here ('-' = stdout).")
    p.set_defaults(run=run)


def _run_info(source: str) -> dict:
    """Name, base model and the configured quant of a run folder (empty for plain models)."""
    from pathlib import Path

    from engine.runs import is_run_dir

    p = Path(source)
    if not is_run_dir(p):
        return {}
    info = {"name": p.resolve().name, "finetune": p.resolve().name}
    try:
        from engine.config import load_config

        cfg = load_config(p / "config.yaml")
        info["base_model"] = cfg.model.name_or_path
        info["gguf_quant"] = cfg.export.gguf_quant
    except Exception:  # an older or hand-edited config.yaml must not block an export
        pass
    return info


def run(args) -> int:
    """Run the export; prints a verification table; exit 1 when verification fails."""
    from pathlib import Path

    from engine.events import EventSink, open_events_target
    from engine.runs import exports_dir_for, model_dir_for
    from exporters.gguf.progress import ExportProgress
    from exporters.gguf.qtypes import parse_quant_list

    info = _run_info(args.source)
    quants = parse_quant_list(args.quant or info.get("gguf_quant") or "auto")
    streams = open_events_target(args.events)
    sink = EventSink(streams) if streams else None
    out = sys.stderr if args.events == "-" else sys.stdout  # keep stdout pure JSON lines
    progress = ExportProgress(sink, bar=sys.stderr.isatty())
    try:
        if args.adapter:  # a wrong source fails now, not after the whole export
            from exporters.gguf.adapter_export import require_adapter_run

            require_adapter_run(Path(args.source))
        from exporters.gguf.vision_export import refuse_run_before_merge

        refuse_run_before_merge(args.source)  # a VLM family without GGUF support: refused before the merge
        progress.message(f"resolving {args.source} ...")
        model_dir = model_dir_for(args.source)
        out_dir = Path(args.out) if args.out else exports_dir_for(args.source)
        metadata = {k: info[k] for k in ("name", "finetune", "base_model") if k in info}
        from exporters.gguf.exporter import GgufExporter
        from engine.vision import is_vlm_folder

        if is_vlm_folder(model_dir):  # a vision-language model: the text LM as usual + an mmproj GGUF
            from exporters.gguf.vision_export import export_vlm

            if args.adapter:
                from engine.errors import EdgetuneError

                raise EdgetuneError("--adapter is for text models; a vision-language run exports merged: drop --adapter.")
            result = export_vlm(model_dir, out_dir, quants, progress, metadata, args.pre_tokenizer, args.name,
                                verify=not args.no_verify, modelfile=not args.no_modelfile,
                                max_kl=args.max_kl, min_top1=args.min_top1)
        else:
            exporter = GgufExporter(model_dir, out_dir, progress, metadata, args.pre_tokenizer, args.name)
            result = exporter.export(quants, verify=not args.no_verify, modelfile=not args.no_modelfile,
                                     max_kl=args.max_kl, min_top1=args.min_top1)
        if args.adapter:
            from exporters.gguf.adapter_export import export_run_adapter

            result.reports += export_run_adapter(Path(args.source), out_dir, exporter, verify=not args.no_verify)
        if not is_vlm_folder(model_dir):
            exporter.close()
    except BaseException as e:
        if sink is not None:
            sink.emit("error", **_error_fields(e))
        raise
    finally:
        progress.close()
    _print_summary(result, out, not args.no_verify)
    for r in result.reports:
        for p in r.problems:
            progress.warning(f"{r.file}: {p}", "see verify.json beside the file; do not ship a file that fails")
        for note in r.warnings:
            if sink is not None:
                sink.emit("warning", message=f"{r.file}: {note}", hint="a known llama.cpp convention; see verify.json")
    for p in result.modelfile_problems:
        progress.warning(f"Modelfile: {p}", "write the Ollama TEMPLATE by hand from the chat template")
    if sink is not None:
        sink.close()
    return 0 if (args.no_verify or result.passed) else 1


def _error_fields(e: BaseException) -> dict:
    """kind/message/hint of the `error` event for an exception (our messages end with the fix)."""
    from engine.errors import EdgetuneError

    text = str(e) or type(e).__name__
    if isinstance(e, KeyboardInterrupt):
        return {"kind": "interrupted", "message": "export interrupted", "hint": "run the same command again"}
    if not isinstance(e, EdgetuneError):
        return {"kind": "internal", "message": f"{type(e).__name__}: {text}", "hint": "this is a bug; please report it"}
    kind = "disk" if ("disk" in text.lower() or "truncated" in text or "write to" in text) else "model"
    first, _, rest = text.partition(". ")
    return {"kind": kind, "message": first if rest else text, "hint": rest or ""}


def _print_summary(result, out, verified: bool) -> None:
    from exporters.gguf.verify import format_table

    for f in result.files:
        print(f"{f.path}  {f.type}  {f.size_bytes / 1e6:.1f} MB  {f.seconds:.1f} s", file=out)
    if result.modelfile:
        print(f"{result.modelfile}  (ollama create {result.model_name} -f {result.modelfile})", file=out)
    if result.auto_choice:
        print(f"--quant auto chose {result.auto_choice}", file=out)
    if verified and result.reports:
        print(format_table(result.reports), file=out)
    for p in result.modelfile_problems:
        print(f"  Modelfile: {p}", file=out)
