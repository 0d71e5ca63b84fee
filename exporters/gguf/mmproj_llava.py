"""LLaVA's vision side (CLIP encoder + 2-layer MLP projector) as llama.cpp's `mlp` mmproj.

llama.cpp's convert_hf_to_gguf.py does not take a transformers LLaVA-1.5 with a CLIP tower (its
LlavaVisionModel handles the Pixtral/Mistral-3 towers only); the file is written the way its
tools/mtmd/legacy-models/convert_image_encoder_to_gguf.py writes one for llava-hf configs, with
gguf-py's tensor names, which libmtmd's LLaVA graph (tools/mtmd/models/llava.cpp) reads:

- `clip.projector_type=mlp`; projector `multi_modal_projector.linear_1/2` -> `mm.0` / `mm.2`
  (llama.cpp's MLP runs mm.0 -> GELU -> mm.2).
- `clip.vision.feature_layer` = transformers' `vision_feature_layer` made non-negative
  (-2 of N blocks -> N-1: the input of the last block), and `clip.vision.block_count` = the
  deepest such layer: the blocks after it are left out (they never reach the projector), and
  so is CLIP's `post_layernorm` (LLaVA takes hidden states before it).
- the CLS token: `v.class_embd` is written, `v.pre_ln` (CLIP's `pre_layrnorm`) too;
  llama.cpp always drops the CLS row before the projector, i.e. transformers'
  `vision_feature_select_strategy="default"` ("full" is refused).
- `clip.use_gelu` only when the tower's `hidden_act` is "gelu"; otherwise llama.cpp runs
  quick-GELU, which is CLIP's default (`quick_gelu`).

Known llama.cpp behaviour (the build llama-cpp-python bundles, and upstream master as of this
writing): tools/mtmd/models/llava.cpp appends the CLS token *after* the patches
(`ggml_concat(ctx0, inp, model.class_embedding, 1)`) while clip.cpp still fills the position
ids and the kept-token indices for CLS-first, so every token gets its neighbour's position
embedding, patch 0 is dropped and CLS is sent to the LM as the last image token. The mmproj
is right; llama.cpp's image embeddings are not. verify_mmproj reports the mismatch, and
explain_mismatch() shows it is exactly this (transformers' model run in that order matches).
"""

from __future__ import annotations

from engine.errors import EdgetuneError
from exporters.gguf.mmproj import SKIP, ProjectorLayout, register_projector

PROJECTOR = {"linear_1": "mm.0", "linear_2": "mm.2"}
TOWER_ACTS = ("gelu", "quick_gelu")  # the FFN activations llama.cpp's CLIP graph has (use_gelu or its default)


def feature_layers(config: dict) -> list[int]:
    """transformers' vision_feature_layer (int or list, negative from the end) as llama.cpp's non-negative indices.

    Index k is the input of encoder block k (0: the embeddings after pre_layrnorm), as in
    transformers' `hidden_states[k]`."""
    n = int(config["vision_config"]["num_hidden_layers"])
    layers = config.get("vision_feature_layer", -2)
    layers = [layers] if isinstance(layers, int) else list(layers)
    return [k if k >= 0 else n + k + 1 for k in layers]


def check(config: dict) -> None:
    """EdgetuneError naming the setting when this LLaVA's vision side is one llama.cpp's `mlp` graph cannot run."""
    vision = config["vision_config"]
    problems = []
    if vision.get("model_type", "clip_vision_model") != "clip_vision_model":
        problems.append(f"its vision tower is {vision.get('model_type')!r} (llama.cpp's LLaVA mmproj takes a CLIP tower)")
    if config.get("vision_feature_select_strategy", "default") != "default":
        problems.append("vision_feature_select_strategy is 'full' (llama.cpp always drops the CLS token: 'default')")
    if str(vision.get("hidden_act", "quick_gelu")) not in TOWER_ACTS:
        problems.append(f"the tower's hidden_act is {vision.get('hidden_act')!r} (llama.cpp runs {' or '.join(TOWER_ACTS)})")
    if config.get("projector_hidden_act", "gelu") != "gelu" or not config.get("multimodal_projector_bias", True):
        problems.append("its projector is not linear+bias -> gelu -> linear+bias (llama.cpp's mlp projector)")
    if problems:
        raise EdgetuneError(f"GGUF export of this LLaVA model is not supported: {'; '.join(problems)}. Nothing was written.")


def add_keys(writer, config: dict, pre: dict) -> None:
    writer.add_vision_use_gelu(config["vision_config"].get("hidden_act", "quick_gelu") == "gelu")
    writer.add_array("clip.vision.feature_layer", feature_layers(config))


def block_count(config: dict) -> int:
    return max(feature_layers(config))


def tensor_name(key: str, names, config: dict) -> str | None:
    """GGUF name of a `model.vision_tower.*` / `model.multi_modal_projector.*` tensor (loaded-model names,
    families.py's module_key); SKIP for the ones llama.cpp does not use."""
    key = key.removeprefix("model.")
    if key.startswith("vision_tower."):  # gguf-py's table knows llava-hf's names: vision_tower.vision_model.*
        key = "vision_tower.vision_model." + key.removeprefix("vision_tower.")
    if key.startswith("multi_modal_projector."):
        layer, _, kind = key.removeprefix("multi_modal_projector.").partition(".")
        return f"{PROJECTOR[layer]}.{kind}" if layer in PROJECTOR else None
    if ".post_layernorm." in key or key.endswith("position_ids"):
        return SKIP
    if ".encoder.layers." in key and int(key.split(".encoder.layers.")[1].split(".")[0]) >= block_count(config):
        return SKIP
    return names.get_name(key, try_suffixes=(".weight", ".bias"))


def cls_last_embeddings(model_dir, image):
    """transformers' LLaVA image embeddings with libmtmd's token order (CLS after the patches, positions 0..n in
    that order, tokens 1..n kept): what llama.cpp computes from a correct mmproj. (tokens, hidden) float32."""
    import torch
    from transformers import AutoModelForImageTextToText

    from engine.vision import read_config
    from engine.vision.processor import load_processor

    config = read_config(model_dir)
    model = AutoModelForImageTextToText.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    tower, projector = model.model.vision_tower, model.model.multi_modal_projector
    pixels = load_processor(model_dir).image_processor(images=[image], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        emb = tower.embeddings
        patches = emb.patch_embedding(pixels.to(emb.patch_embedding.weight.dtype)).flatten(2).transpose(1, 2)
        x = torch.cat([patches, emb.class_embedding.expand(1, 1, -1)], dim=1) + emb.position_embedding.weight[None]
        states = [tower.pre_layrnorm(x)]
        for layer in tower.encoder.layers[: block_count(config)]:
            out = layer(states[-1], None)
            states.append(out[0] if isinstance(out, tuple) else out)
        features = torch.cat([states[k] for k in feature_layers(config)], dim=-1)[:, 1:]
        return projector(features)[0].float().numpy()


def explain_mismatch(model_dir, image, embeddings) -> str | None:
    """The llama.cpp CLS-order bug, when llama.cpp's embeddings match transformers' run in its token order."""
    ref = cls_last_embeddings(model_dir, image)
    if ref.shape != embeddings.shape:
        return None
    nmse = float(((embeddings - ref) ** 2).sum() / max((ref ** 2).sum(), 1e-30))
    if nmse > 1e-3:
        return None
    return (f"this is llama.cpp's LLaVA token-order bug (tools/mtmd/models/llava.cpp appends the CLS token after the "
            f"patches while clip.cpp indexes them CLS-first): run in that order, transformers' model matches llama.cpp "
            f"to NMSE {nmse:.1e}, so the mmproj is right and llama.cpp's LLaVA image features are off until it is fixed")


register_projector("mlp", ProjectorLayout(add_keys=add_keys, tensor_name=tensor_name, block_count=block_count, check=check,
                                          explain_mismatch=explain_mismatch))
