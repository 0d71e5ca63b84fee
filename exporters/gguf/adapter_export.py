"""`--adapter`: a run's LoRA as adapter-f16.gguf next to base-f16.gguf, verified against the merged model.

llama.cpp applies the adapter at load time (`-m base-f16.gguf --lora adapter-f16.gguf`),
so one base file serves many fine-tunes. Verification loads exactly that pair in
llama.cpp and compares its logits with the run's merged HF model: if the adapter's
tensors, names, row order or scale were wrong, the two would differ.
"""

from __future__ import annotations

import json
from pathlib import Path

from engine.errors import EdgetuneError

ADAPTER_TYPE = "f16"


def base_model_dir(run_dir: Path, adapter_cfg: dict) -> Path:
    """The HF folder of the model the adapter was trained on."""
    from engine.models import resolve_model

    spec = None
    try:
        from engine.config import load_config

        spec = load_config(Path(run_dir) / "config.yaml").model.name_or_path
    except Exception:
        spec = adapter_cfg.get("base_model_name_or_path")
    if not spec:
        raise EdgetuneError(f"Cannot tell which base model '{run_dir}' was trained on (config.yaml has no model).")
    return resolve_model(str(spec)).path


def require_adapter_run(run_dir: Path) -> Path:
    """The run's adapter/ folder, or the error `--adapter` gives for any other source (checked before exporting)."""
    from engine.runs import is_run_dir

    adapter_dir = Path(run_dir) / "adapter"
    if not is_run_dir(run_dir) or not (adapter_dir / "adapter_config.json").is_file():
        raise EdgetuneError(f"--adapter needs a run folder with an adapter/ (got '{run_dir}'). Full fine-tunes have "
                            f"no adapter: export the model itself.")
    from engine.config import load_config
    from engine.train.methods import get_method

    method = get_method(load_config(Path(run_dir) / "config.yaml").method)
    if not method.export.gguf_adapter:
        how = ("export the merged model instead: engine export gguf " + str(run_dir)) if method.export.merge else \
            method.export.why_not
        raise EdgetuneError(f"--adapter writes a llama.cpp LoRA adapter (A/B pairs), which method={method.name} is not. "
                            f"Use --adapter with method=lora or qlora runs; for this run, {how}")
    return adapter_dir


def _base_identity(base_dir: Path) -> dict:
    """What base-f16.gguf was written from: the folder and its weight files' sizes and times."""
    files = sorted(Path(base_dir).glob("*.safetensors"))
    return {"model_dir": str(Path(base_dir).resolve()),
            "weights": {f.name: [f.stat().st_size, int(f.stat().st_mtime)] for f in files}}


def export_run_adapter(run_dir: Path, out_dir: Path, exporter, verify: bool = True) -> list:
    """Write base-f16.gguf and adapter-f16.gguf for a run; returns the VerifyReports (empty without verify).

    With verification both files are staged, verified as a pair, and published with their verify.json
    entries (base-f16.gguf's entry is the pair's report: it was verified with the adapter applied).
    """
    from exporters.gguf.staging import Staging

    run_dir = Path(run_dir)
    adapter_dir = require_adapter_run(run_dir)
    with Staging(Path(out_dir), enabled=verify) as staging:  # what is not published goes, on any exit
        return _export_pair(run_dir, adapter_dir, Path(out_dir), exporter, staging, verify)


def _export_pair(run_dir: Path, adapter_dir: Path, out_dir: Path, exporter, staging, verify: bool) -> list:
    from dataclasses import replace

    from engine.formats.gguf_integrity import check_gguf
    from exporters.gguf.convert import GgufConverter
    from exporters.gguf.lora import export_lora_adapter, read_adapter_config
    from exporters.safe_write import atomic_path, check_free_space, write_text_atomic

    base_dir = base_model_dir(run_dir, read_adapter_config(adapter_dir))
    progress = exporter.progress
    base_path = out_dir / f"base-{ADAPTER_TYPE}.gguf"
    stamp = base_path.with_name(f".{base_path.name}.source.json")
    source = _base_identity(base_dir)
    base_written = base_path  # reused as it is, unless it must be written
    write_base = not (base_path.is_file() and stamp.is_file() and json.loads(stamp.read_text(encoding="utf-8")) == source)
    if write_base:
        # a base-f16.gguf of another model (or of unknown origin) is never reused for this adapter
        progress.message(f"writing the base model {base_dir.name} as {base_path.name} ...")
        conv = GgufConverter(base_dir)
        check_free_space(out_dir, conv.estimate_bytes(ADAPTER_TYPE), base_path.name)
        base_written = staging.target(base_path)
        with atomic_path(base_written) as tmp:
            conv.write(tmp, ADAPTER_TYPE)
            check_gguf(tmp)
    adapter_path = out_dir / f"adapter-{ADAPTER_TYPE}.gguf"
    adapter_written = staging.target(adapter_path)
    info = export_lora_adapter(adapter_dir, base_dir, adapter_written, ADAPTER_TYPE, name=run_dir.resolve().name)
    reports, entries = [], []
    if verify:
        from exporters.gguf.verify import verify_gguf

        # The reference is the merged run model the exporter already loaded: base + adapter must equal it.
        report = verify_gguf(base_written, exporter.reference(), ADAPTER_TYPE, lora=adapter_written,
                             name=adapter_path.name)
        report.type = f"lora {ADAPTER_TYPE}"
        reports = [report]
        base_report = replace(report, file=base_path.name, size_bytes=base_written.stat().st_size,
                              type=f"{ADAPTER_TYPE}, base of {adapter_path.name}")
        entries = [report, base_report]
    staging.publish(entries, base_written, adapter_written)
    if write_base:
        write_text_atomic(stamp, json.dumps(source, indent=1))  # only once base-f16.gguf is in place
    progress.message(f"wrote {adapter_path} ({info['tensors']} tensors, alpha {info['alpha']:g}); "
                     f"use: llama-cli -m {base_path} --lora {adapter_path}")
    return reports
