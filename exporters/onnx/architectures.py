"""Hugging Face architectures that ONNX Runtime GenAI's model builder turns into GenAI graphs.

The builder dispatches on `config.architectures[0]`; we check the same name up front so an
unsupported model fails in a second with the list below, instead of after loading its
weights. Text decoders are listed here; vision-language models are vlm_pipelines.py's (the
builder's decoder plus edgetune's vision and embedding graphs). A new family is one new line,
once the builder supports it.
"""

from __future__ import annotations

import json
from pathlib import Path

from engine.errors import EdgetuneError

# architecture (config.json) -> families it covers
ARCHITECTURES: dict[str, str] = {
    "LlamaForCausalLM": "Llama 2/3.x, SmolLM2, TinyLlama, DeepSeek-R1-Distill-Llama",
    "MistralForCausalLM": "Mistral 7B, Ministral",
    "Qwen2ForCausalLM": "Qwen2, Qwen2.5, DeepSeek-R1-Distill-Qwen",
    "Qwen3ForCausalLM": "Qwen3 (dense)",
    "GemmaForCausalLM": "Gemma",
    "Gemma2ForCausalLM": "Gemma 2",
    "Gemma3ForCausalLM": "Gemma 3 (text)",
    "PhiForCausalLM": "Phi-2",
    "Phi3ForCausalLM": "Phi-3, Phi-3.5, Phi-4-mini",
    "GraniteForCausalLM": "IBM Granite 3",
    "OlmoForCausalLM": "AMD/AI2 OLMo",
    "NemotronForCausalLM": "Nemotron",
    "SmolLM3ForCausalLM": "SmolLM3",
    "InternLM2ForCausalLM": "InternLM2",
    "Ernie4_5ForCausalLM": "ERNIE 4.5",
}


def architecture_of(model_dir: Path) -> str:
    """`architectures[0]` from the folder's config.json."""
    config = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))
    archs = config.get("architectures") or []
    if not archs:
        raise EdgetuneError(f"{model_dir}/config.json names no architecture (the 'architectures' list is empty), "
                            f"so the ONNX builder cannot tell how to build it. Re-save the model with transformers.")
    return archs[0]


def check_architecture(model_dir: Path) -> str:
    """The architecture name, or EdgetuneError listing the supported ones."""
    arch = architecture_of(model_dir)
    config = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))
    if "vision_config" in config:
        return _check_vlm(arch, config, Path(model_dir))
    if arch not in ARCHITECTURES:
        listed = ", ".join(f"{a} ({f})" for a, f in ARCHITECTURES.items())
        raise EdgetuneError(
            f"ONNX export does not support architecture {arch} (from {model_dir}/config.json): ONNX Runtime "
            f"GenAI's model builder has no graph for it. Supported: {listed}. "
            f"Export this model to GGUF instead: engine export gguf ..."
        )
    return arch


def is_vlm(model_dir: Path) -> bool:
    """Whether the folder holds a vision-language model (its config has a vision tower)."""
    return "vision_config" in json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))


def _check_vlm(arch: str, config: dict, model_dir: Path) -> str:
    """A VLM's architecture once its pipeline says the runtime can run it, else EdgetuneError naming what can."""
    from exporters.onnx.vlm_pipelines import image_processor_settings, supported_vlms, vlm_pipeline_for

    pipeline = vlm_pipeline_for(arch)
    if pipeline is None:
        raise EdgetuneError(
            f"ONNX export of the vision-language model {arch} (from {model_dir}) is not supported: edgetune exports "
            f"VLMs as ONNX Runtime GenAI's multimodal pipeline (vision encoder + embedding + decoder), which it builds "
            f"for {supported_vlms()}. Export this one to GGUF instead, which writes the language model plus an "
            f"mmproj file for llama.cpp: engine export gguf ..."
        )
    pipeline.check(config, image_processor_settings(model_dir), model_dir)
    return arch
