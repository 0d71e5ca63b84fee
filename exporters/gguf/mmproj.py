"""The vision side of a VLM as llama.cpp's `mmproj` GGUF (its CLIP file: vision encoder + projector).

    write_mmproj(merged_vlm_dir, Path("exports/mmproj-f16.gguf"))

Written the way llama.cpp's convert_hf_to_gguf.py `--mmproj` writes it for the family
(architecture "clip", `clip.projector_type`, the `clip.vision.*` hyper-parameters and the
preprocessor's mean/std/size; tensor names from gguf-py's MMPROJ table). What differs per
projector type is a ProjectorLayout in PROJECTORS: idefics3 below, LLaVA's `mlp` in
mmproj_llava.py, Gemma 3's in mmproj_gemma3.py. So llama.cpp's
multimodal runtime (libmtmd, llama-mtmd-cli, llama-server --mmproj) loads it. Weights are F16
(or F32); norms, biases and the patch/position embeddings stay F32 as llama.cpp keeps them.
Written to a temp name and renamed when complete.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from engine.errors import EdgetuneError

MMPROJ_TYPES = ("f16", "f32")


def _gguf_name(key: str, names, config: dict) -> str | None:
    return names.get_name(key, try_suffixes=(".weight", ".bias"))


def _same_values(key: str, t):
    return t


@dataclass(frozen=True)
class ProjectorLayout:
    """What differs per llama.cpp projector type (`clip.projector_type`), as convert_hf_to_gguf.py writes it.

    write_mmproj writes the keys every CLIP file has; a layout adds the rest and names the tensors."""

    add_keys: Callable  # (writer, config, preprocessor) -> None: the keys only this projector has
    # (module name, gguf-py's MMPROJ name map, config) -> GGUF name, SKIP to leave it out, None when unknown
    tensor_name: Callable = _gguf_name
    adjust: Callable = _same_values  # (module name, numpy array) -> the values llama.cpp wants
    block_count: Callable = lambda config: int(config["vision_config"]["num_hidden_layers"])  # encoder blocks kept
    check: Callable = lambda config: None  # EdgetuneError (before any work) for a variant llama.cpp cannot run
    # (model_dir, image, llama.cpp's embeddings) -> why they differ from transformers', when a known llama.cpp
    # behaviour explains it (None otherwise); verify_mmproj adds it to the problem it reports
    explain_mismatch: Callable = lambda model_dir, image, embeddings: None
    image_text: str = "{marker}"  # what the processor writes for an image besides the tokens libmtmd adds around it


SKIP = ""  # tensor_name's answer for a tensor llama.cpp does not use
PROJECTORS: dict[str, ProjectorLayout] = {}


def register_projector(projector_type: str, layout: ProjectorLayout) -> ProjectorLayout:
    PROJECTORS[projector_type] = layout
    return layout


def mmproj_file_name(qtype: str = "f16") -> str:
    return f"mmproj-{qtype}.gguf"


def _preprocessor(model_dir: Path) -> dict:
    for name in ("preprocessor_config.json", "processor_config.json"):
        path = model_dir / name
        if path.is_file():
            data = json.loads(path.read_text(encoding="utf-8"))
            return data.get("image_processor", data)
    return {}


def check_mmproj_supported(model_dir: Path):
    """The VisionFamily, or EdgetuneError (before any work) when llama.cpp has no projector for it."""
    from engine.vision import read_config
    from engine.vision.families import family_for

    config = read_config(model_dir)
    family = family_for(config)
    if family.gguf_unsupported:
        raise EdgetuneError(f"GGUF export of {family.name} vision-language models ({model_dir}) is not supported yet: "
                            f"{family.gguf_unsupported}. Nothing was written. The merged HF folder (engine merge RUN) "
                            f"works with engine chat and engine serve.")
    if not family.llama_cpp_projector or family.llama_cpp_projector not in _projectors():
        raise EdgetuneError(f"GGUF export of {family.name} vision-language models is not supported yet: llama.cpp has no "
                            f"mmproj projector edgetune can write for it. Nothing was written.")
    _projectors()[family.llama_cpp_projector].check(config)
    return family


def _projectors() -> dict[str, ProjectorLayout]:
    from exporters.gguf import mmproj_gemma3, mmproj_llava  # noqa: F401  (register "gemma3" and "mlp")

    return PROJECTORS


def projector_layout(model_dir: Path) -> ProjectorLayout:
    """The ProjectorLayout of the VLM in `model_dir` (check_mmproj_supported's errors otherwise)."""
    return _projectors()[check_mmproj_supported(model_dir).llama_cpp_projector]


def _idefics3_keys(writer, config: dict, pre: dict) -> None:
    vision = config["vision_config"]
    writer.add_vision_projector_scale_factor(int(config.get("scale_factor", 2)))
    writer.add_vision_use_gelu(True)
    writer.add_vision_preproc_image_size(int((pre.get("size") or {}).get("longest_edge", vision["image_size"])))


register_projector("idefics3", ProjectorLayout(add_keys=_idefics3_keys))


def write_mmproj(model_dir: Path, out: Path, qtype: str = "f16") -> Path:
    """Write the mmproj GGUF of the VLM in `model_dir` to `out`; returns `out`."""
    import gguf
    import numpy as np
    from safetensors import safe_open

    from engine.vision import read_config

    if qtype not in MMPROJ_TYPES:
        raise EdgetuneError(f"mmproj type {qtype} is unknown; allowed: {', '.join(MMPROJ_TYPES)}.")
    family = check_mmproj_supported(model_dir)
    config = read_config(model_dir)
    vision, text = config["vision_config"], config["text_config"]
    pre = _preprocessor(model_dir)
    layout = _projectors()[family.llama_cpp_projector]
    n_blocks = layout.block_count(config)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.MMPROJ, n_blocks)
    tmp = out.with_name(f".{out.name}.partial")
    writer = gguf.GGUFWriter(str(tmp), "clip")
    writer.add_type(gguf.GGUFType.MMPROJ)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if qtype == "f16" else gguf.LlamaFileType.ALL_F32)
    writer.add_clip_has_vision_encoder(True)
    writer.add_clip_projector_type(family.llama_cpp_projector)
    writer.add_vision_projection_dim(int(text["hidden_size"]))
    writer.add_vision_image_size(int(vision["image_size"]))
    writer.add_vision_patch_size(int(vision["patch_size"]))
    writer.add_vision_embedding_length(int(vision["hidden_size"]))
    writer.add_vision_feed_forward_length(int(vision["intermediate_size"]))
    writer.add_vision_block_count(n_blocks)
    writer.add_vision_head_count(int(vision["num_attention_heads"]))
    writer.add_vision_image_mean([float(x) for x in pre.get("image_mean", [0.5, 0.5, 0.5])])
    writer.add_vision_image_std([float(x) for x in pre.get("image_std", [0.5, 0.5, 0.5])])
    writer.add_vision_attention_layernorm_eps(float(vision.get("layer_norm_eps", 1e-5)))
    layout.add_keys(writer, config, pre)
    prefixes = family.vision_modules + family.projector_modules
    written = 0
    for shard in sorted(model_dir.glob("*.safetensors")):
        with safe_open(str(shard), framework="pt") as f:
            for saved in f.keys():
                key = family.module_key(saved)
                if not key.startswith(tuple(p + "." for p in prefixes)):
                    continue
                name = layout.tensor_name(key, names, config)
                if name == SKIP:
                    continue
                if name is None:
                    raise EdgetuneError(f"mmproj: no llama.cpp name for tensor {key} of {model_dir}; this checkpoint's "
                                        f"vision side differs from the {family.name} layout edgetune knows.")
                t = layout.adjust(key, f.get_tensor(saved).float().numpy())
                keep_f32 = qtype == "f32" or t.ndim == 1 or ".embeddings." in key
                writer.add_tensor(name, t.astype(np.float32 if keep_f32 else np.float16))
                written += 1
    if not written:
        raise EdgetuneError(f"mmproj: {model_dir} holds no vision tensors under {', '.join(prefixes)}.")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    tmp.rename(out)
    return out

