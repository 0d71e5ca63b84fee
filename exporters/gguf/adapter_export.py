"""`--adapter`: a run's LoRA as adapter-f16.gguf next to base-f16.gguf, verified against the merged model.

llama.cpp applies the adapter at load time (`-m base-f16.gguf --lora adapter-f16.gguf`),
so one base file serves many fine-tunes. Verification loads exactly that pair in
llama.cpp and compares its logits with the run's merged HF model: if the adapter's
tensors, names, row order or scale were wrong, the two would differ.
"""

from __future__ import annotations

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


def export_run_adapter(run_dir: Path, out_dir: Path, exporter, verify: bool = True) -> list:
    """Write base-f16.gguf and adapter-f16.gguf for a run; returns the VerifyReports (empty without verify)."""
    from engine.runs import is_run_dir
    from exporters.gguf.convert import GgufConverter
    from exporters.gguf.integrity import check_gguf
    from exporters.gguf.lora import export_lora_adapter, read_adapter_config
    from exporters.safe_write import atomic_path

    run_dir = Path(run_dir)
    adapter_dir = run_dir / "adapter"
    if not is_run_dir(run_dir) or not (adapter_dir / "adapter_config.json").is_file():
        raise EdgetuneError(f"--adapter needs a run folder with an adapter/ (got '{run_dir}'). Full fine-tunes have "
                            f"no adapter: export the model itself.")
    base_dir = base_model_dir(run_dir, read_adapter_config(adapter_dir))
    progress = exporter.progress
    base_path = Path(out_dir) / f"base-{ADAPTER_TYPE}.gguf"
    if not base_path.is_file():
        progress.message(f"writing the base model {base_dir.name} as {base_path.name} ...")
        conv = GgufConverter(base_dir)
        with atomic_path(base_path) as tmp:
            conv.write(tmp, ADAPTER_TYPE)
            check_gguf(tmp)
    adapter_path = Path(out_dir) / f"adapter-{ADAPTER_TYPE}.gguf"
    info = export_lora_adapter(adapter_dir, base_dir, adapter_path, ADAPTER_TYPE, name=run_dir.resolve().name)
    progress.message(f"wrote {adapter_path} ({info['tensors']} tensors, alpha {info['alpha']:g}); "
                     f"use: llama-cli -m {base_path} --lora {adapter_path}")
    if not verify:
        return []
    from exporters.gguf.verify import save_reports, verify_gguf

    # The reference is the merged run model the exporter already loaded: base + adapter must equal it.
    report = verify_gguf(base_path, exporter.reference(), ADAPTER_TYPE, lora=adapter_path)
    report.type = f"lora {ADAPTER_TYPE}"
    save_reports(Path(out_dir) / "verify.json", [report])
    return [report]
