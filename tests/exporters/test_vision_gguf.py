"""GGUF export of a VLM: the decoder through our converter + an mmproj GGUF that llama.cpp's
multimodal library loads and whose image embeddings (and, where libmtmd lays the prompt out as the
processor does, next-token logits on a question about the image) match transformers'; ONNX refuses VLMs."""

from __future__ import annotations

import pytest

from engine.errors import EdgetuneError
from tests.engine.vision_fixtures import *  # noqa: F401,F403  (session fixtures)


def _merged(run):
    from engine.train.merge import merge_adapter

    if not (run / "merged" / "config.json").is_file():
        merge_adapter(run)
    return run / "merged"


@pytest.fixture(scope="session")
def merged_vlm(vlm_run):
    return _merged(vlm_run[0])


@pytest.fixture(scope="session")
def family_merged_vlm(family_vlm_run):
    return _merged(family_vlm_run[0])


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
    assert mm.passed and mm.tokens_checked == vlm_family.image_tokens and mm.nmse < 1e-3, mm.problems  # image embeddings
    if vlm_family.llama_cpp_same_prompt:  # a question about the image: llama.cpp's next-token logits = transformers'
        assert mm.nmse_max_prompt < 1e-4 and mm.top1 == 1.0, mm.warnings  # (causal attention over the image: 6e-4)
    reader = gguf.GGUFReader(str(out / "mmproj-f16.gguf"))
    assert reader.fields["clip.projector_type"].contents() == vlm_family.projector_type
    assert not list(out.glob(".*"))  # no staging or partial files left behind
    assert "mmproj-f16.gguf" in (out / "verify.json").read_text()


def test_onnx_refuses_a_vlm_naming_gguf(merged_vlm):
    from exporters.onnx.architectures import check_architecture

    with pytest.raises(EdgetuneError, match="ONNX export of vision-language models .*engine export gguf"):
        check_architecture(merged_vlm)


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
