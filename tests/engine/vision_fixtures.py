"""Session fixtures for vision-language tests: tiny random VLMs, shapes data, one trained run per family.

Import the fixtures into a test module (`from tests.engine.vision_fixtures import *`).
`tiny_vlm_dir` / `vlm_run` are the Idefics3 model and run; a test that takes `vlm_family` (or
`family_vlm_dir` / `family_vlm_run`) runs once per family in TINY_FAMILIES. A new family is one
TinyFamily entry: its builder and the module names the tests look for.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import pytest

__all__ = ["TINY_FAMILIES", "TinyFamily", "tiny_vlm_dir", "shapes_dir", "vlm_run", "vlm_family", "family_vlm_dir",
           "family_vlm_run"]


@dataclass(frozen=True)
class TinyFamily:
    name: str
    build: Callable  # (out folder, bundled SmolLM2 folder) -> the model folder
    decoder: str  # module path of the text decoder (LoRA goes there)
    vision_layer: str  # a vision-tower linear layer (stays 16-bit under QLoRA)
    projector: str  # the projector's module name (saved with the adapter under lora.train_projector)
    end_of_turn: str  # what closes an answer in its chat template (trained on)
    projector_type: str  # clip.projector_type of its mmproj GGUF
    image_tokens: int = 4  # per 32 px image
    marks_image_tokens: bool = False  # the processor gives token_type_ids (bidirectional attention inside an image)
    llama_cpp_same_prompt: bool = False  # libmtmd lays out an image prompt token for token as the processor does
    gguf: bool = True  # engine export gguf writes it (False: refused before any work, families.py gguf_unsupported)

    @property
    def vision_path(self) -> str:  # the vision tower's module path (Qwen2-VL's holds its projector, visual.merger)
        return self.vision_layer.split(".encoder.")[0].split(".blocks.")[0]

    def in_vision_tower(self, name: str) -> bool:
        """Whether parameter `name` belongs to the vision tower proper (not the projector it may hold)."""
        return self.vision_path + "." in name and self.projector_path + "." not in name

    @property
    def projector_path(self) -> str:
        return "model." + self.projector


def _idefics3(out, lm_dir):
    from engine.vision.tiny_vlm import build_tiny_vlm

    return build_tiny_vlm(out, lm_dir, random_lm=True)


def _llava(out, lm_dir):
    from engine.vision.tiny_llava import build_tiny_llava

    return build_tiny_llava(out, lm_dir, random_lm=True)


def _gemma3(out, lm_dir):
    from engine.vision.tiny_gemma3 import build_tiny_gemma3

    return build_tiny_gemma3(out, lm_dir)


def _qwen2_vl(out, lm_dir):
    from engine.vision.tiny_qwen2_vl import build_tiny_qwen2_vl

    return build_tiny_qwen2_vl(out, lm_dir)


def _qwen2_5_vl(out, lm_dir):
    from engine.vision.tiny_qwen2_vl import build_tiny_qwen2_vl

    return build_tiny_qwen2_vl(out, lm_dir, version="qwen2_5_vl")


TINY_FAMILIES = {
    # 2-layer 64-wide SigLIP-style tower + pixel-shuffle connector + a 2-layer 64-wide Llama, SmolLM2's tokenizer
    "idefics3": TinyFamily("idefics3", _idefics3, "model.text_model", "model.vision_model.encoder.layers.0.self_attn.q_proj",
                           "connector", "<|im_end|>\n", "idefics3"),
    # 2-layer 32-wide SigLIP + avg-pool/RMSNorm/projection + a 2-layer 64-wide gemma3_text, SmolLM2's tokenizer + Gemma's
    "gemma3": TinyFamily("gemma3", _gemma3, "model.language_model", "model.vision_tower.encoder.layers.0.self_attn.q_proj",
                         "multi_modal_projector", "<end_of_turn>\n", "gemma3", marks_image_tokens=True,
                         llama_cpp_same_prompt=True),
    # 2-layer 64-wide CLIP (CLS dropped, second-to-last layer) + 2-layer MLP projector + a 2-layer 64-wide Llama, ChatML
    "llava": TinyFamily("llava", _llava, "model.language_model", "model.vision_tower.encoder.layers.0.self_attn.q_proj",
                        "multi_modal_projector", "<|im_end|>\n", "mlp", image_tokens=16),
    # 2-layer 32-wide ViT (2-D RoPE) + PatchMerger (inside model.visual) + a 2-layer 64-wide M-RoPE decoder, ChatML;
    # no GGUF export yet (no qwen2vl LM architecture or mmproj writer in our converter): refused before any work
    "qwen2_vl": TinyFamily("qwen2_vl", _qwen2_vl, "model.language_model", "model.visual.blocks.0.attn.qkv",
                           "visual.merger", "<|im_end|>\n", "", gguf=False),
    # the same with Qwen2.5-VL's tower (RMSNorm, gated MLP, window attention in block 0, full attention in block 1)
    "qwen2_5_vl": TinyFamily("qwen2_5_vl", _qwen2_5_vl, "model.language_model", "model.visual.blocks.0.attn.qkv",
                             "visual.merger", "<|im_end|>\n", "", gguf=False),
}


@pytest.fixture(scope="session")
def tiny_vlm_dir(tmp_path_factory, bundled_model_dir):
    """Idefics3: 2-layer 64-wide SigLIP-style tower + connector + a 2-layer 64-wide Llama, SmolLM2's tokenizer."""
    return _idefics3(tmp_path_factory.mktemp("tiny-vlm") / "model", bundled_model_dir)


@pytest.fixture(scope="session")
def shapes_dir(tmp_path_factory):
    """16 training + 4 held-out coloured-shape questions (ShareGPT and OpenAI-parts layouts)."""
    from engine.vision.shapes import write_shapes

    out = tmp_path_factory.mktemp("shapes")
    write_shapes(out, train=16, held_out=4)
    return out


def _train_run(out, model_dir, shapes_dir):
    from engine.config import load_config
    from tests.engine.run_helpers import train

    cfg = load_config(None, [f"model={model_dir}", f"data={shapes_dir / 'train.jsonl'}", f"output_dir={out}",
                             "method=lora", "batch_size=4", "max_len=64", "lr=1e-2", "max_steps=4", "optim.warmup_ratio=0",
                             "lora.dropout=0", "train.backend=hf", "quant.compute_dtype=fp32"])
    result, events, _ = train(cfg)
    assert result["status"] == "completed", events[-3:]
    return out, events


@pytest.fixture(scope="session")
def vlm_run(tmp_path_factory, tiny_vlm_dir, shapes_dir):
    """(run folder, events) of a 4-step LoRA run on the tiny Idefics3 VLM."""
    return _train_run(tmp_path_factory.mktemp("vlm-run") / "run", tiny_vlm_dir, shapes_dir)


@pytest.fixture(scope="session", params=sorted(TINY_FAMILIES))
def vlm_family(request) -> TinyFamily:
    """Each VLM family the engine trains (the test runs once per family)."""
    return TINY_FAMILIES[request.param]


@pytest.fixture(scope="session")
def family_vlm_dir(vlm_family, tmp_path_factory, request):
    """The tiny random model of `vlm_family` (the Idefics3 one is tiny_vlm_dir itself)."""
    if vlm_family.name == "idefics3":
        return request.getfixturevalue("tiny_vlm_dir")
    return vlm_family.build(tmp_path_factory.mktemp(f"tiny-{vlm_family.name}") / "model",
                            request.getfixturevalue("bundled_model_dir"))


@pytest.fixture(scope="session")
def family_vlm_run(vlm_family, family_vlm_dir, shapes_dir, tmp_path_factory, request):
    """(run folder, events) of a 4-step LoRA run on `vlm_family`'s tiny model (vlm_run for Idefics3)."""
    if vlm_family.name == "idefics3":
        return request.getfixturevalue("vlm_run")
    return _train_run(tmp_path_factory.mktemp(f"{vlm_family.name}-run") / "run", family_vlm_dir, shapes_dir)
