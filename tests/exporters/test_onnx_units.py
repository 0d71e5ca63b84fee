"""ONNX export: targets, architectures, tokenizer fix-up, verification bounds, CLI errors (fast)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from engine.errors import EdgetuneError
from engine.formats.onnx_targets import PRECISIONS, TARGETS, folder_name, resolve_target
from tests.conftest import REPO


def test_default_targets_and_folder_names():
    assert resolve_target("int4", None).name == "cpu"
    assert resolve_target("fp32", None).name == "cpu"
    assert resolve_target("fp16", None).name == "cuda"  # no fp16 CPU graph in the builder
    assert folder_name("int4", TARGETS["cpu"]) == "onnx-int4"
    assert folder_name("int4", TARGETS["mobile"]) == "onnx-int4-mobile"
    assert folder_name("fp16", TARGETS["dml"]) == "onnx-fp16-dml"


@pytest.mark.parametrize("precision,target,names", [
    ("fp16", "cpu", ["fp16 on --target cpu", "cuda or dml", "mobile: int4"]),
    ("fp32", "mobile", ["fp32 on --target mobile", "--precision int4"]),
    ("int8", "dml", ["int8 on --target dml", "cpu or cuda"]),
])
def test_unsupported_pairs_list_the_supported_ones(precision, target, names):
    with pytest.raises(EdgetuneError) as e:
        resolve_target(precision, target)
    for n in names:
        assert n in str(e.value)
    assert "Supported pairs: cpu: int4, int8, fp32" in str(e.value)


def test_unknown_precision_and_target():
    with pytest.raises(EdgetuneError, match="choose one of: int4, int8, fp16, fp32"):
        resolve_target("int2", None)
    with pytest.raises(EdgetuneError, match="choose one of: cpu, mobile, cuda, dml"):
        resolve_target("int4", "tpu")


def test_builder_options_per_target_and_size():
    from exporters.onnx.build import builder_options

    small = builder_options("int4", TARGETS["cpu"], 135_000_000)
    assert small == {"hf_token": "false", "matmul_mixed_precision": "mixed_layers:int8", "algo_config": "k_quant"}
    assert "algo_config" not in builder_options("int4", TARGETS["cpu"], 8_000_000_000)
    assert builder_options("int4", TARGETS["mobile"], 135_000_000)["accuracy_level"] == "4"
    assert "matmul_mixed_precision" not in builder_options("int4", TARGETS["dml"], 135_000_000)  # no 8-bit on DML
    assert builder_options("fp32", TARGETS["cpu"], 135_000_000) == {"hf_token": "false"}
    assert set(PRECISIONS) == {"int4", "int8", "fp16", "fp32"}


def test_unsupported_architecture_lists_supported(tmp_path):
    from exporters.onnx.architectures import check_architecture

    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["MambaForCausalLM"]}))
    with pytest.raises(EdgetuneError) as e:
        check_architecture(tmp_path)
    msg = str(e.value)
    assert "MambaForCausalLM" in msg and "LlamaForCausalLM" in msg and "Qwen2ForCausalLM" in msg
    assert "engine export gguf" in msg
    (tmp_path / "config.json").write_text(json.dumps({"architectures": []}))
    with pytest.raises(EdgetuneError, match="names no architecture"):
        check_architecture(tmp_path)


def _gguf_style_tokenizer(tmp_path):
    """A byte-level BPE saved the way transformers rebuilds one from a GGUF (SPM decoder, byte_fallback)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=400, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  special_tokens=["<|im_end|>"])
    tok.train_from_iterator(["The Quillon Q7 lantern lasts forty hours.", "café naïve 你好 🙂", "def f(x): return x"] * 20,
                            trainer)
    tok.decoder = decoders.Sequence([decoders.ByteFallback(), decoders.Fuse(), decoders.Replace("▁", " "),
                                     decoders.ByteLevel()])
    tok.save(str(tmp_path / "tokenizer.json"))
    return tmp_path / "tokenizer.json"


def test_tokenizer_fix_rewrites_spm_decoder_and_keeps_ids(tmp_path):
    from tokenizers import Tokenizer

    from exporters.onnx.tokenizer_fix import fix_tokenizer_json

    path = _gguf_style_tokenizer(tmp_path)
    texts = ["The Quillon Q7 lantern lasts forty hours.", "  café\tnaïve\n你好 🙂", "def f(x): return x<|im_end|>"]
    before = Tokenizer.from_file(str(path))
    ids = [before.encode(t).ids for t in texts]
    changes = fix_tokenizer_json(tmp_path)
    assert changes == ["decoder ByteFallback+Fuse+Replace+ByteLevel -> ByteLevel", "byte_fallback true -> false"]
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["decoder"]["type"] == "ByteLevel" and data["model"]["byte_fallback"] is False
    after = Tokenizer.from_file(str(path))
    for t, i in zip(texts, ids):
        assert after.encode(t).ids == i
        assert after.decode(i, skip_special_tokens=False) == before.decode(i, skip_special_tokens=False)
    assert fix_tokenizer_json(tmp_path) == []  # idempotent


def test_tokenizer_fix_leaves_sentencepiece_alone(tmp_path):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    from exporters.onnx.tokenizer_fix import fix_tokenizer_json

    tok = Tokenizer(models.BPE(vocab={"▁a": 0, "b": 1}, merges=[], byte_fallback=True))
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    tok.save(str(tmp_path / "tokenizer.json"))
    before = (tmp_path / "tokenizer.json").read_text()
    assert fix_tokenizer_json(tmp_path) == []
    assert (tmp_path / "tokenizer.json").read_text() == before


def _report(nmse=0.0, top1=1.0, kl=0.0, eos_in_config=True, forced=True, hf_stop=True, onnx_stop=True, gap=None):
    tokenizer = {"ok": True, "mismatches": []}
    logits = {"nmse": nmse, "top1": top1, "kl": kl}
    run = {"prompt": "q", "hf_stopped": hf_stop, "hf_tokens": 7, "onnx_stopped": onnx_stop,
           "forced_stop": forced, "forced_next_token": 2 if forced else 30}
    if gap is not None:  # the greedy replies parted; HF rates the export's token `gap` nats below its own
        run["divergence"] = {"position": 0, "hf_token": "The", "onnx_token": "L", "hf_logprob_gap": gap}
    eot = {"eos_in_config": eos_in_config, "genai_eos_ids": [2], "eos_token": "<|im_end|>", "eos_token_id": 2,
           "max_new_tokens": 48, "runs": [run]}
    return tokenizer, logits, eot


def test_judge_applies_bounds_per_precision():
    from exporters.onnx.verify import judge

    assert judge("fp32", *_report(nmse=1e-6)) == []
    assert "NMSE" in judge("fp32", *_report(nmse=1e-3))[0]
    assert "top-1" in judge("fp32", *_report(top1=0.9))[0]
    assert judge("fp16", *_report(top1=0.5, kl=0.005)) == []  # fp16: KL bounds it, top-1 is reported
    assert "KL" in judge("int8", *_report(kl=0.2))[0]
    # int4: lossy on small models; a reply that parted from HF's at a near tie and then ran on is
    # reported; one that never stops after following HF, or after a token HF ruled out, fails
    assert judge("int4", *_report(kl=0.9, top1=0.5, onnx_stop=False, gap=0.38)) == []
    assert "did not stop" in judge("int4", *_report(kl=0.9, onnx_stop=False, gap=2.5))[0]
    assert "did not stop" in judge("int4", *_report(kl=0.9, onnx_stop=False))[0]
    assert judge("int8", *_report(kl=0.009, onnx_stop=False, gap=0.08)) == []  # "The" vs "L'": a tie
    assert "did not stop" in judge("int8", *_report(kl=0.009, onnx_stop=False, gap=0.6))[0]
    assert "KL" in judge("int4", *_report(kl=6.0))[0]
    assert "never stop" in judge("int4", *_report(eos_in_config=False))[0]
    assert "not the end-of-turn token" in judge("int4", *_report(forced=False))[0]
    assert "did not stop" in judge("fp32", *_report(onnx_stop=False))[0]


def test_unwritable_or_file_out_are_clear_errors(tiny_model_dir, tmp_path, monkeypatch):
    from pathlib import Path

    from exporters.onnx.exporter import OnnxExporter

    def export(source, out):
        return OnnxExporter(str(source), precision="fp32", out=out, verify=False, speed=False, say=lambda s: None).run()

    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(EdgetuneError, match=r"Cannot write to the export folder .*afile"):
        export(tiny_model_dir, afile / "sub")
    with pytest.raises(EdgetuneError, match=r"afile is a file, not a folder"):
        export(tiny_model_dir, afile)
    # a folder the user may not write to (simulated: the suite may run as root, who may write anywhere)
    real_write = Path.write_bytes

    def denied(self, data):
        if self.name.startswith(".edgetune-write-test"):
            raise PermissionError(13, "Permission denied", str(self))
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", denied)
    with pytest.raises(EdgetuneError, match=r"Cannot write to the export folder .*locked.*Permission denied"):
        export(tiny_model_dir, tmp_path / "locked" / "onnx-fp32")


def test_missing_source_is_a_clear_error(tmp_path, capsys):
    from engine.cli.main import main

    assert main(["export", "onnx", str(tmp_path / "no-such-model")]) == 2
    err = capsys.readouterr().err
    assert "no-such-model" in err and "Traceback" not in err


def test_runtime_rejects_a_folder_that_is_not_an_export(tmp_path):
    from engine.runtimes.onnx_genai import OnnxChatModel

    with pytest.raises(EdgetuneError, match="no genai_config.json"):
        OnnxChatModel(tmp_path)


def test_cli_help_does_not_import_heavy_modules():
    code = ("import sys; from engine.cli.main import build_parser; build_parser(); "
            "print([m for m in ('torch', 'transformers', 'onnx', 'onnxruntime', 'onnxruntime_genai') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_cli_bad_pair_is_one_line_exit_2(capsys, tmp_path):
    from engine.cli.main import main

    assert main(["export", "onnx", str(tmp_path), "--precision", "fp16", "--target", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: fp16 on --target cpu")


def test_cli_unsupported_architecture(tmp_path, capsys):
    from engine.cli.main import main

    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["BertForMaskedLM"]}))
    (tmp_path / "model.safetensors").write_bytes(b"")  # a whole folder as far as engine.models.checks looks
    (tmp_path / "tokenizer.json").write_text("{}")
    assert main(["export", "onnx", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    assert "does not support architecture BertForMaskedLM" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_free_space_check_stops_before_building(tiny_model_dir, tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    from exporters.onnx.exporter import OnnxExporter

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**9, 10**9, 1024))
    with pytest.raises(EdgetuneError, match="Not enough disk space"):
        OnnxExporter(tiny_model_dir, out=tmp_path / "onnx-int4").run()
    assert list(tmp_path.iterdir()) == []


def test_stage_drops_gguf_marker_and_refuses_bitsandbytes(tiny_model_dir, tmp_path):
    import shutil

    from exporters.onnx.build import stage_model

    src = tmp_path / "src"
    shutil.copytree(tiny_model_dir, src)
    config = json.loads((src / "config.json").read_text())
    config["quantization_config"] = {"quant_method": "gguf", "gguf_file": "x.gguf"}
    (src / "config.json").write_text(json.dumps(config))
    stage = stage_model(src, tmp_path / "stage")
    assert "quantization_config" not in json.loads((stage / "config.json").read_text())
    assert (stage / "model.safetensors").is_symlink() and (stage / "tokenizer.json").is_file()
    assert not (stage / "tokenizer.json").is_symlink()  # re-saved, never written through a link into the source
    config["quantization_config"] = {"quant_method": "bitsandbytes", "load_in_4bit": True}
    (src / "config.json").write_text(json.dumps(config))
    with pytest.raises(EdgetuneError, match="bitsandbytes"):
        stage_model(src, tmp_path / "stage2")


def test_out_folder_that_is_not_an_export_is_never_replaced(tiny_model_dir, tmp_path):
    from exporters.onnx.exporter import OnnxExporter

    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(EdgetuneError, match="is not an ONNX export"):
        OnnxExporter(tiny_model_dir, out=tmp_path).run()
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_sliding_window_graphs_keep_a_kv_buffer_of_their_window(tmp_path):
    """Gemma 2/3: onnxruntime refuses a KV buffer smaller than the graph's local window, so the mobile
    target's 2048-token cap stops at the window, and the runtime never asks for less."""
    from exporters.onnx.build import tune_genai_config
    from engine.runtimes.onnx_genai import min_kv_capacity

    config = {"model": {"context_length": 8192, "decoder": {"sliding_window": {"window_size": 4096}}},
              "search": {"max_length": 8192}}
    (tmp_path / "genai_config.json").write_text(json.dumps(config))
    tuned = tune_genai_config(tmp_path, TARGETS["mobile"])
    assert min_kv_capacity(tuned) == 4096 and tuned["search"]["max_length"] == 4096
    plain = {"model": {"context_length": 8192, "decoder": {}}, "search": {"max_length": 8192}}
    (tmp_path / "genai_config.json").write_text(json.dumps(plain))
    assert tune_genai_config(tmp_path, TARGETS["mobile"])["search"]["max_length"] == 2048
    assert min_kv_capacity(plain) == 0
