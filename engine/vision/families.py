"""The VLM architectures the engine trains, as a registry: where each keeps its parts.

A family names, inside its transformers `...ForConditionalGeneration` model, the text decoder
(LoRA goes there), the vision tower and the projector (frozen by default, never quantised: a
4-bit vision tower loses more than it saves, and llama.cpp keeps the mmproj in 16/32-bit), and
llama.cpp's name for its projector (the mmproj GGUF's `clip.projector_type`).
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.errors import ConfigError


@dataclass(frozen=True)
class VisionFamily:
    name: str
    model_types: tuple  # config.json model_type values
    language_model: str  # module path of the text decoder
    vision_modules: tuple  # module paths of the vision encoder
    projector_modules: tuple  # module paths of the projector (connector)
    llama_cpp_projector: str | None = None  # clip.projector_type in an mmproj GGUF, when llama.cpp runs it
    # (regex, replacement) from the tensor names in its safetensors files to the module paths above, when they
    # differ: transformers 5 loads and saves some families under their older checkpoint names
    checkpoint_names: tuple = ()
    # why edgetune cannot write its GGUF files yet ("" when it can): the export refuses before any work, saying so
    gguf_unsupported: str = ""

    def module_key(self, saved: str) -> str:
        """A tensor's name in a saved checkpoint -> its name in the loaded model ('model.language_model...')."""
        import re

        for pattern, replacement in self.checkpoint_names:
            renamed, n = re.subn(pattern, replacement, saved)
            if n:
                return renamed
        return saved


FAMILIES: dict[str, VisionFamily] = {}

# How transformers 5 saves LLaVA-style models (llava-hf's and Google's Gemma 3 checkpoint names: its
# conversion_mapping.py, reversed); CLIP/SigLIP's `vision_model.` level is gone from the loaded tower, present in files
LLAVA_CHECKPOINT_NAMES = ((r"^language_model\.model\.", "model.language_model."), (r"^language_model\.lm_head\.", "lm_head."),
                          (r"^vision_tower\.(vision_model\.)?", "model.vision_tower."),
                          (r"^multi_modal_projector\.", "model.multi_modal_projector."))


def register_family(family: VisionFamily) -> VisionFamily:
    for model_type in family.model_types:
        FAMILIES[model_type] = family
    return family


register_family(VisionFamily(
    "idefics3", ("idefics3", "smolvlm"), language_model="model.text_model", vision_modules=("model.vision_model",),
    projector_modules=("model.connector",), llama_cpp_projector="idefics3"))
# LLaVA-1.5 layout (llava-hf): CLIP tower, 2-layer MLP projector, Llama-architecture LM; llama.cpp's "mlp" projector
register_family(VisionFamily(
    "llava", ("llava",), language_model="model.language_model", vision_modules=("model.vision_tower",),
    projector_modules=("model.multi_modal_projector",), llama_cpp_projector="mlp",
    checkpoint_names=LLAVA_CHECKPOINT_NAMES))


def family_for(config: dict) -> VisionFamily:
    """The family of a VLM's config.json; ConfigError listing the supported ones otherwise."""
    model_type = str(config.get("model_type", ""))
    if model_type in FAMILIES:
        return FAMILIES[model_type]
    known = sorted({f"{f.name} ({', '.join(f.model_types)})" for f in FAMILIES.values()})
    raise ConfigError(f"model_type={model_type!r} is a vision-language model edgetune does not train yet; supported: "
                      f"{'; '.join(known)}. Use a model of a supported family, or open an issue naming the model.")


def family_of_model(model) -> VisionFamily | None:
    """The family of a loaded model, or None for a text-only model (or a multimodal one of another family)."""
    config = model.config.to_dict() if hasattr(model, "config") else {}
    if "vision_config" not in config:
        return None
    return FAMILIES.get(str(config.get("model_type", "")))


from engine.vision import family_gemma3, family_qwen2_vl  # noqa: E402,F401  (register Gemma 3, Qwen2-VL)
