"""GGUF export of a VLM (each family's tiny model): the decoder through our converter + an mmproj GGUF that llama.cpp's
multimodal library loads and whose image embeddings (and, where libmtmd lays the prompt out as the
processor does, next-token logits on a question about the image) match transformers'; ONNX refuses the VLMs
ONNX Runtime GenAI cannot run; a family
without GGUF support yet (Qwen2-VL) is refused before anything is written."""

from __future__ import annotations

import json

import pytest

from engine.errors import EdgetuneError
from tests.engine.vision_fixtures import *  # noqa: F401,F403  (session fixtures)
from tests.engine.vision_fixtures import TINY_FAMILIES


def _merged(run):
    from engine.train.merge import merge_adapter

    if not (run / "merged" / "config.json").is_file():
        merge_adapter(run)
    return run / "merged"


@pytest.fixture(scope="session")
def merged_vlm(vlm_run):
    return _merged(vlm_run[0])


@pytest.fixture(scope="session")
def family_merged_vlm(vlm_family, request):
    if not vlm_family.gguf:  # before its run is trained and merged
        pytest.skip(f"GGUF export of {vlm_family.name} is refused before any work "
                    f"(test_qwen2_vl_gguf_export_is_refused_before_any_work)")
    return _merged(request.getfixturevalue("family_vlm_run")[0])


@pytest.mark.slow
def test_lm_and_mmproj_written_and_verified_by_llama_cpp(vlm_family, family_merged_vlm, tmp_path):
    import gguf

    from exporters.gguf.vision_export import export_vlm

    out = tmp_path / "exports"
    result = export_vlm(family_merged_vlm, out, ["f16"], modelfile=False)
    names = sorted(f.path.name for f in result.files)
    assert names == ["mmproj-f16.gguf", "model-f16.gguf"]
    lm, mm = result.reports
    assert lm.passed and round(lm.top1 * lm.positions) + lm.top1_ties == lm.positions, lm.problems  # any miss a near-tie
    assert mm.tokens_checked == vlm_family.image_tokens  # llama.cpp loaded both files and encoded the image
    if vlm_family.name == "llava" and not mm.passed:
        # llama.cpp's LLaVA graph orders CLS after the patches (exporters/gguf/mmproj_llava.py): its embeddings match
        # transformers' model run in that order, which proves every mmproj tensor and key is read as meant
        assert len(mm.problems) == 1 and "token-order bug" in mm.problems[0], mm.problems
    else:
        assert mm.passed and mm.nmse < 1e-3, mm.problems  # llama.cpp's image embeddings == transformers'
    if vlm_family.llama_cpp_same_prompt:  # a question about the image: llama.cpp's next-token logits = transformers'
        assert mm.nmse_max_prompt < 1e-4 and mm.top1 == 1.0, mm.warnings  # (causal attention over the image: 6e-4)
    reader = gguf.GGUFReader(str(out / "mmproj-f16.gguf"))
    assert reader.fields["clip.projector_type"].contents() == vlm_family.projector_type
    if vlm_family.name == "llava":  # vision_feature_layer=-2 of 2 CLIP blocks: the input of block 1; block 1 left out
        assert reader.fields["clip.vision.feature_layer"].contents() == [1]
        assert reader.fields["clip.vision.block_count"].contents() == 1
        tensors = {t.name for t in reader.tensors}
        assert {"mm.0.weight", "mm.2.bias", "v.class_embd", "v.pre_ln.weight", "v.blk.0.ffn_up.weight"} <= tensors
        assert not any(t.startswith(("v.blk.1.", "v.post_ln")) for t in tensors)
    assert not list(out.glob(".*"))  # no staging or partial files left behind
    assert "mmproj-f16.gguf" in (out / "verify.json").read_text()


def test_onnx_export_the_runtime_cannot_run_is_refused_before_any_work(family_vlm_dir, vlm_family):
    """Gemma 3 with 4 image tokens is refused naming the runtime's 256; the families ONNX Runtime GenAI has no
    pipeline for name the ones edgetune builds and GGUF. (test_onnx_vlm.py exports a Gemma 3 it can run.)"""
    from exporters.onnx.architectures import check_architecture

    if vlm_family.name == "gemma3":
        with pytest.raises(EdgetuneError, match="into 4 tokens .*always expands an image into 256"):
            check_architecture(family_vlm_dir)
    elif vlm_family.name == "qwen2_5_vl":  # exported and verified in test_onnx_vlm.py
        assert check_architecture(family_vlm_dir) == "Qwen2_5_VLForConditionalGeneration"
    else:
        with pytest.raises(EdgetuneError, match="is not supported: .*Gemma3ForConditionalGeneration.*engine export gguf"):
            check_architecture(family_vlm_dir)


def test_unsupported_decoder_is_refused_before_work(merged_vlm, tmp_path):
    import json
    import shutil

    from exporters.gguf.vision_export import export_vlm

    odd = tmp_path / "odd"
    shutil.copytree(merged_vlm, odd)
    config = json.loads((odd / "config.json").read_text())
    config["text_config"]["architectures"] = ["MysteryForCausalLM"]
    (odd / "config.json").write_text(json.dumps(config))
    with pytest.raises(EdgetuneError, match="MysteryForCausalLM.*does not cover yet.*Nothing was written"):
        export_vlm(odd, tmp_path / "out", ["f16"])
    assert not (tmp_path / "out").exists()


def test_llava_hub_tensor_names_map_to_llama_cpp_names():
    import gguf

    from engine.vision.families import FAMILIES
    from exporters.gguf.mmproj import PROJECTORS, SKIP
    from exporters.gguf.mmproj_llava import PROJECTOR  # noqa: F401  (registers the "mlp" layout)

    llava, layout = FAMILIES["llava"], PROJECTORS["mlp"]
    config = {"vision_config": {"num_hidden_layers": 24}, "vision_feature_layer": -2}
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.MMPROJ, 23)
    for saved, expected in [  # llava-hf/llava-1.5 names, and transformers 5's own save of the same model
        ("vision_tower.vision_model.encoder.layers.22.mlp.fc1.weight", "v.blk.22.ffn_up.weight"),
        ("vision_tower.encoder.layers.0.self_attn.out_proj.bias", "v.blk.0.attn_out.bias"),
        ("vision_tower.vision_model.pre_layrnorm.weight", "v.pre_ln.weight"),
        ("vision_tower.vision_model.embeddings.class_embedding", "v.class_embd"),
        ("multi_modal_projector.linear_1.weight", "mm.0.weight"), ("multi_modal_projector.linear_2.bias", "mm.2.bias"),
        ("vision_tower.vision_model.encoder.layers.23.mlp.fc1.weight", SKIP),  # after the feature layer
        ("vision_tower.vision_model.post_layernorm.weight", SKIP),
    ]:
        assert layout.tensor_name(llava.module_key(saved), names, config) == expected, saved
    assert llava.module_key("language_model.model.layers.0.mlp.up_proj.weight") == "model.language_model.layers.0.mlp.up_proj.weight"
    assert llava.module_key("language_model.lm_head.weight") == "lm_head.weight"


@pytest.mark.parametrize("change, expected", [
    ({"vision_feature_select_strategy": "full"}, "vision_feature_select_strategy is 'full'"),
    ({"vision_config": {"model_type": "siglip_vision_model"}}, "vision tower is 'siglip_vision_model'"),
    ({"projector_hidden_act": "relu"}, "projector is not linear"),
])
def test_llava_variants_llama_cpp_cannot_run_are_refused_before_work(tmp_path, change, expected):
    import json

    from exporters.gguf.mmproj import check_mmproj_supported

    config = {"model_type": "llava", "vision_config": {"model_type": "clip_vision_model", "num_hidden_layers": 2},
              "text_config": {"model_type": "llama"}, **change}
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(EdgetuneError, match=f"not supported: .*{expected}.*Nothing was written"):
        check_mmproj_supported(tmp_path)


@pytest.mark.parametrize("name", sorted(n for n, f in TINY_FAMILIES.items() if not f.gguf))
def test_qwen2_vl_gguf_export_is_refused_before_any_work(name, tmp_path, capsys):
    """engine export gguf on a Qwen2-VL (Qwen2.5-VL) run refuses before merging it (nothing written, in the run or the output),
    naming what edgetune's converter lacks and what works instead; the merged folder is refused the same way."""
    import shutil

    from engine.cli.main import main
    from exporters.gguf.vision_export import export_vlm

    qwen = TINY_FAMILIES[name]
    assert not qwen.gguf
    from engine.models import resolve_model

    model = qwen.build(tmp_path / "model", resolve_model("smollm2-135m-instruct").path)
    run = tmp_path / "run"
    (run / "adapter").mkdir(parents=True)  # a run folder as train leaves it, its adapter not merged yet
    (run / "config.yaml").write_text(f"model:\n  name_or_path: {model}\nmethod: lora\n")
    (run / "adapter" / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(model),
                                                                    "peft_type": "LORA"}))
    (run / "status.json").write_text(json.dumps({"status": "completed"}))
    shutil.copy2(model / "processor_config.json", run / "adapter")  # a VLM run keeps its processor with the adapter
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert main(["export", "gguf", str(run), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"GGUF export of {name} vision-language models" in err and "not supported yet" in err
    assert "no qwen2vl language-model architecture" in err and "M-RoPE" in err and "mmproj writer" in err
    assert "Nothing was written" in err and "engine chat and engine serve" in err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # no merged/, no out/
    shutil.copytree(model, tmp_path / "merged")
    with pytest.raises(EdgetuneError, match=f"GGUF export of {name} .*not supported yet: .*qwen2vl.*Nothing was written"):
        export_vlm(tmp_path / "merged", tmp_path / "out2", ["f16"])
    assert not (tmp_path / "out2").exists()
