"""Vision-language architectures edgetune exports to ONNX Runtime GenAI's multimodal pipeline.

One `VlmPipeline` per HF architecture: the genai model type the runtime dispatches on, what
the runtime needs of the model (checked before any work), the image preprocessing it runs
(onnxruntime-extensions' processor_config.json, written from the model's own image processor
settings) and the genai_config sections that tie vision.onnx and embedding.onnx to the
builder's decoder. A new family is one module that registers its pipeline; the graphs
themselves are vlm_graphs.py's. The builder (0.18) builds the decoders of
Gemma3ForConditionalGeneration, Qwen2_5_VLForConditionalGeneration, Qwen3VL, Mistral3, LFM2-VL,
Phi-3-vision and Phi-4-multimodal; of the VLM families edgetune trains, Gemma 3 and Qwen2.5-VL have
a pipeline here (vlm_gemma3.py, vlm_qwen2_5_vl.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from engine.errors import EdgetuneError

# onnxruntime-extensions' Resize names for PIL's resample codes (what HF image processors store)
RESAMPLE = {0: "NEAREST", 1: "LANCZOS", 2: "LINEAR", 3: "CUBIC"}


def _no_extras(model, model_dir: Path) -> tuple[dict, dict]:
    return {}, {}


@dataclass(frozen=True)
class VlmPipeline:
    """What one architecture needs to run as an ONNX Runtime GenAI multimodal pipeline."""

    arch: str
    families: str  # for messages
    genai_type: str  # genai_config model.type: the runtime's pipeline for it
    check: Callable[[dict, dict, Path], None]  # (config.json, image processor settings, model folder) -> or EdgetuneError
    processor_config: Callable[[dict, dict], dict]  # (config.json, image processor settings) -> processor_config.json
    # HF model -> (vision graph module, example inputs {name: tensor}, dynamic axes of inputs and output {name: {dim: name}})
    vision: Callable
    # (HF model, model folder) -> (extra genai_config model keys, extra model.vision keys)
    genai_extras: Callable[..., tuple[dict, dict]] = _no_extras


VLM_PIPELINES: dict[str, VlmPipeline] = {}


def register_vlm_pipeline(pipeline: VlmPipeline) -> VlmPipeline:
    VLM_PIPELINES[pipeline.arch] = pipeline
    return pipeline


def _load_all() -> None:
    from exporters.onnx import vlm_gemma3, vlm_qwen2_5_vl  # noqa: F401  (registration)


def vlm_pipeline_for(arch: str) -> VlmPipeline | None:
    _load_all()
    return VLM_PIPELINES.get(arch)


def vlm_architectures() -> list[str]:
    """The VLM architectures that export to ONNX."""
    _load_all()
    return sorted(VLM_PIPELINES)


def supported_vlms() -> str:
    return ", ".join(f"{a} ({VLM_PIPELINES[a].families})" for a in vlm_architectures())


def image_processor_settings(model_dir: Path) -> dict:
    """The model's image processor settings: preprocessor_config.json, or processor_config.json's image_processor."""
    model_dir = Path(model_dir)
    for name in ("preprocessor_config.json", "processor_config.json"):
        path = model_dir / name
        if path.is_file():
            data = json.loads(path.read_text(encoding="utf-8"))
            data = data.get("image_processor", data)
            if "image_mean" in data or "size" in data:
                return data
    raise EdgetuneError(f"{model_dir} has no image processor settings (preprocessor_config.json or processor_config.json), "
                        f"so the ONNX export cannot tell how images are resized and normalised. Export the run folder "
                        f"or a model folder saved with its processor (processor.save_pretrained).")


def require_tokens(model_dir: Path, tokens: list[str], why: str) -> None:
    """EdgetuneError unless the tokenizer has each of `tokens` as one token."""
    from engine.models.loading import tokenizer_from_dir

    tok = tokenizer_from_dir(model_dir)
    vocab = tok.get_vocab()
    missing = [t for t in tokens if t not in vocab]
    if missing:
        raise EdgetuneError(f"The tokenizer of {model_dir} has no {', '.join(missing)} token, which {why}. "
                            f"Export a model whose tokenizer has them (as the original model's does).")


def genai_sections(vision_inputs: list[str], vision_extras: dict) -> dict:
    """genai_config model.vision / model.embedding for vision.onnx and embedding.onnx.

    No session_options of their own: the runtime then uses the decoder's, so choosing the
    execution provider at load time (OnnxChatModel runs a CUDA export on the CPU) covers all three."""
    return {
        "vision": {"filename": "vision.onnx", "config_filename": "processor_config.json", **vision_extras,
                   "inputs": {name: name for name in vision_inputs}, "outputs": {"image_features": "image_features"}},
        "embedding": {"filename": "embedding.onnx",
                      "inputs": {"input_ids": "input_ids", "image_features": "image_features"},
                      "outputs": {"inputs_embeds": "inputs_embeds"}},
    }
