"""A run's LoRA adapter as a GGUF adapter file, for llama.cpp's `--lora` (llama family).

    llama-cli -m model-f16.gguf --lora adapter-f16.gguf        # base GGUF + adapter
    export_lora_adapter(run_dir / "adapter", base_dir, Path("exports/adapter-f16.gguf"))

The file holds, per adapted matrix W, two tensors `<gguf name>.lora_a` (r x in) and
`.lora_b` (out x r) plus `adapter.lora.alpha`; llama.cpp adds (alpha / r) * B @ A to W.
Everything the base converter does to W's rows applies to B's rows (the llama
rotary reordering of q/k), since A only mixes the input side.

Not representable, so refused: DoRA (a learned magnitude per column), per-layer
alpha patterns, adapters on embeddings or trained extra modules. rsLoRA's
alpha / sqrt(r) is stored as alpha * sqrt(r), which llama.cpp's alpha / r turns back into it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional

from engine.errors import EdgetuneError

LORA_FAMILIES = ("llama",)


def read_adapter_config(adapter_dir: Path) -> dict:
    path = Path(adapter_dir) / "adapter_config.json"
    if not path.is_file():
        raise EdgetuneError(f"'{adapter_dir}' has no adapter_config.json: it is not a PEFT adapter folder.")
    return json.loads(path.read_text(encoding="utf-8"))


def _base_name(peft_name: str) -> tuple[str, str]:
    """'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight' -> (HF weight name, 'A')."""
    name = peft_name
    for prefix in ("base_model.model.",):
        if name.startswith(prefix):
            name = name[len(prefix):]
    for part, which in ((".lora_A.weight", "A"), (".lora_B.weight", "B")):
        if name.endswith(part):
            return name[: -len(part)] + ".weight", which
    for part, which in ((".lora_A.", "A"), (".lora_B.", "B")):  # named adapters: lora_A.default.weight
        if part in name:
            return name.split(part)[0] + ".weight", which
    raise EdgetuneError(
        f"Adapter tensor '{peft_name}' is not a LoRA A/B matrix (an embedding adapter, DoRA magnitude or a trained "
        f"extra module?). llama.cpp's LoRA files hold only A/B pairs: export the merged model instead."
    )


def check_adapter(cfg: dict, adapter_dir: Path) -> float:
    """Refuse what llama.cpp cannot apply; return the alpha to store."""
    if cfg.get("peft_type", "LORA") != "LORA":
        raise EdgetuneError(f"'{adapter_dir}' is a {cfg.get('peft_type')} adapter; llama.cpp loads LoRA adapters only.")
    if cfg.get("use_dora"):
        raise EdgetuneError("DoRA adapters cannot be applied by llama.cpp (no magnitude vector in its LoRA format); "
                            "export the merged model instead (engine export gguf RUN).")
    if cfg.get("alpha_pattern") or cfg.get("rank_pattern"):
        raise EdgetuneError("This adapter uses per-layer alpha/rank patterns; llama.cpp has one alpha per file. "
                            "Export the merged model instead.")
    if cfg.get("modules_to_save"):
        raise EdgetuneError(f"This adapter also trains whole modules ({cfg['modules_to_save']}); a llama.cpp LoRA "
                            f"cannot carry them. Export the merged model instead.")
    r, alpha = int(cfg["r"]), float(cfg.get("lora_alpha", cfg["r"]))
    return alpha * math.sqrt(r) if cfg.get("use_rslora") else alpha


def export_lora_adapter(adapter_dir: Path, base_dir: Path, out_path: Path, out_type: str = "f16",
                        name: Optional[str] = None) -> dict:
    """Write the adapter GGUF; returns {path, tensors, bytes, alpha}."""
    import gguf

    from exporters.gguf.convert import read_config
    from engine.formats.gguf_integrity import check_gguf
    from exporters.gguf.registry import architecture_for
    from exporters.safe_write import atomic_path
    from exporters.gguf.tensors import SafetensorsSource, storage_type, to_storage

    adapter_dir, out_path = Path(adapter_dir), Path(out_path)
    if out_type not in ("f32", "f16", "bf16"):
        raise EdgetuneError(f"An adapter GGUF is written as f32, f16 or bf16, not {out_type}.")
    cfg = read_adapter_config(adapter_dir)
    alpha = check_adapter(cfg, adapter_dir)
    arch = architecture_for(read_config(base_dir), base_dir)
    if arch.arch_name not in LORA_FAMILIES:
        raise EdgetuneError(f"Adapter GGUF export is done for the {', '.join(LORA_FAMILIES)} family; this base is "
                            f"'{arch.arch_name}'. Export the merged model instead (engine export gguf RUN).")
    weights = adapter_dir / "adapter_model.safetensors"
    if not weights.is_file():
        raise EdgetuneError(f"'{adapter_dir}' has no adapter_model.safetensors.")
    pairs: dict[str, dict] = {}
    source = SafetensorsSource(adapter_dir)
    for t in source:
        base, which = _base_name(t.name)
        pairs.setdefault(base, {})[which] = source.load(t)
    count = 0
    with atomic_path(out_path) as tmp:
        w = gguf.GGUFWriter(str(tmp), arch.arch_name)
        w.add_type(gguf.GGUFType.ADAPTER)
        w.add_string(gguf.Keys.Adapter.TYPE, "lora")
        w.add_float32(gguf.Keys.Adapter.LORA_ALPHA, float(alpha))
        if name:
            w.add_name(name)
        w.add_quantization_version(gguf.GGML_QUANT_VERSION)
        for base in sorted(pairs):
            ab = pairs[base]
            if set(ab) != {"A", "B"}:
                raise EdgetuneError(f"Adapter '{adapter_dir}' has only lora_{''.join(ab)} for {base}.")
            # The base converter's row transforms (q/k rotary order) apply to B's rows.
            (gname, b), = list(arch.transform(base, ab["B"]))
            for suffix, t in ((".lora_a", ab["A"]), (".lora_b", b)):
                qtype = storage_type(gname, tuple(t.shape), out_type)
                w.add_tensor(gname + suffix, to_storage(t, qtype), raw_dtype=qtype)
                count += 1
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        check_gguf(tmp)
    return {"path": out_path, "tensors": count, "bytes": out_path.stat().st_size, "alpha": alpha}
