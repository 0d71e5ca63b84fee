"""ONNX export end to end: real builder, real onnxruntime / onnxruntime-genai, real verification.

A tiny random Llama goes through every precision (and the mobile and DirectML targets);
the bundled SmolLM2-135M-Instruct, fine-tuned for two LoRA steps, goes through int4 for
phones and fp32, and is chatted with through `OnnxChatModel`.
"""

from __future__ import annotations

import json

import pytest

from engine.events import SCHEMA, EventSink
from exporters.onnx.exporter import OnnxExporter
from engine.runtimes.onnx_genai import OnnxChatModel
from tests.conftest import REPO
from tests.exporters.test_gguf_fixtures import tiny_models  # noqa: F401  (fixture)

pytestmark = pytest.mark.slow

MODEL_FILES = {"genai_config.json", "model.onnx", "model.onnx.data", "tokenizer.json", "tokenizer_config.json",
               "chat_template.jinja", "verify.json", "export.json", "README.md", "build.log"}


def _export(source, out, precision, target=None, speed=False, events=None, verify=True):
    sink = EventSink(listeners=[events.append] if events is not None else [])
    return OnnxExporter(source, precision=precision, target=target, out=out, verify=verify, speed=speed, sink=sink,
                        say=lambda s: None).run()


@pytest.mark.parametrize("precision,target", [("int4", None), ("int8", None), ("fp16", None), ("fp32", None),
                                              ("int4", "mobile"), ("fp16", "dml")])
def test_tiny_model_every_precision_builds_loads_and_verifies(tiny_model_dir, tmp_path, precision, target):
    events = []
    out = tmp_path / "exports" / "onnx-x"
    result = _export(tiny_model_dir, out, precision, target, speed=precision == "int4" and target is None, events=events)

    assert result.folder == out and MODEL_FILES <= {f.name for f in out.iterdir()}
    assert sorted(p.name for p in out.parent.iterdir()) == ["onnx-x"]  # no .partial / .stage / cache left behind
    report = json.loads((out / "verify.json").read_text())
    assert report["passed"], report["failures"]
    assert report["tokenizer"]["ok"] and report["tokenizer"]["chat_template_equal"]
    assert report["end_of_turn"]["eos_in_config"]
    if precision == "fp32":
        assert report["logits"]["nmse"] <= 1e-4 and report["logits"]["top1"] >= 0.99
    info = json.loads((out / "export.json").read_text())
    assert info["precision"] == precision and info["target"] == (target or ("cuda" if precision == "fp16" else "cpu"))
    assert info["size_mb"] > 0 and info["build_s"] > 0
    if result.speed:
        assert result.speed["tokens_per_s"] > 0 and result.speed["new_tokens"] == 64
    config = json.loads((out / "genai_config.json").read_text())
    assert config["model"]["eos_token_id"] == 2
    if target == "mobile":
        assert config["search"]["max_length"] == 512  # min(the model's 512-token context, mobile's 2048 window)
        assert info["builder_options"]["accuracy_level"] == "4"
        assert "On a phone" in (out / "README.md").read_text()

    kinds = {e["type"] for e in events}
    assert kinds <= set(SCHEMA) and "export_progress" in kinds
    fractions = [e["fraction"] for e in events if e["type"] == "export_progress"]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert {"build", "verify", "done"} <= {e["stage"] for e in events if e["type"] == "export_progress"}


@pytest.mark.parametrize("arch", ["qwen2", "gemma2", "gemma3"])
def test_tiny_models_of_other_families_export_and_verify(tiny_models, tmp_path, arch):  # noqa: F811
    """Beyond Llama: a byte-level BPE (Qwen2) and a SentencePiece (Gemma 2, no system role) tokenizer; Gemma 3,
    whose per-layer-type rope settings (transformers 5) the builder reads only through builder_child.py."""
    result = _export(tiny_models[arch], tmp_path / f"onnx-{arch}", "fp32")
    v = result.verification
    assert v["passed"], v["failures"]
    assert v["tokenizer"]["ok"] and v["tokenizer"]["chat_template_equal"]
    assert v["logits"]["nmse"] <= 1e-4 and v["logits"]["top1"] >= 0.99


def test_a_tokenizer_the_runtime_gets_wrong_is_caught(tiny_models, tmp_path):  # noqa: F811
    """onnxruntime-genai's tokenizer splits whitespace runs of this SentencePiece-BPE vocabulary differently
    from sentencepiece and transformers ('▁▁▁','▁' vs '▁▁','▁▁' in "    return"), and keeps the dummy-prefix
    space when decoding: verification must refuse to publish such an export."""
    from engine.errors import EdgetuneError

    out = tmp_path / "onnx-phi3"
    with pytest.raises(EdgetuneError, match=r"failed verification: tokenizer differs from transformers"):
        _export(tiny_models["phi3"], out, "fp32")
    assert not out.exists()
    report = json.loads((tmp_path / "onnx-phi3.failed" / "verify.json").read_text())
    assert {m["kind"] for m in report["tokenizer"]["mismatches"]} == {"encode", "decode"}


def test_reexport_replaces_the_old_folder(tiny_model_dir, tmp_path):
    out = tmp_path / "onnx-fp32"
    _export(tiny_model_dir, out, "fp32", verify=False)
    (out / "stale.txt").write_text("from the old export")
    _export(tiny_model_dir, out, "fp32", verify=False)
    assert not (out / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["onnx-fp32"]
    assert not (out / "verify.json").exists() and "not run (--no-verify)" in (out / "README.md").read_text()


def test_failed_verification_never_reaches_the_final_path(tiny_model_dir, tmp_path, monkeypatch):
    from engine.errors import EdgetuneError
    from exporters.onnx import verify

    monkeypatch.setitem(verify.BOUNDS, "int8", verify.Bounds(max_kl=-1.0))  # nothing can pass
    out = tmp_path / "onnx-int8"
    with pytest.raises(EdgetuneError, match="failed verification: KL"):
        _export(tiny_model_dir, out, "int8")
    assert not out.exists()
    failed = tmp_path / "onnx-int8.failed"
    assert not json.loads((failed / "verify.json").read_text())["passed"]


def test_builder_failure_names_the_reason_and_the_log(tiny_model_dir, tmp_path, monkeypatch):
    from engine.errors import EdgetuneError
    from exporters.onnx import build

    real = build.builder_options
    monkeypatch.setattr(build, "builder_options", lambda *a: {**real(*a), "block_size": "not-a-number"})
    with pytest.raises(EdgetuneError, match=r"model builder failed \(exit 1\): .*Full log: .*build.log"):
        _export(tiny_model_dir, tmp_path / "onnx-int4", "int4")
    assert not (tmp_path / "onnx-int4").exists()


@pytest.fixture(scope="module")
def tuned_run(bundled_model_dir, tmp_path_factory):
    """SmolLM2-135M-Instruct after two real LoRA steps on the sample data: a finished run folder."""
    from engine.config import load_config
    from engine.train.run import run_training

    out = tmp_path_factory.mktemp("runs") / "tuned"
    cfg = load_config(None, ["model=smollm2-135m-instruct", f"data={REPO / 'assets/datasets/quillon_facts.jsonl'}",
                             f"output_dir={out}", "method=lora", "max_steps=2", "batch_size=2", "max_len=96",
                             "lr=1e-3", "train.backend=hf"])
    run_training(cfg, EventSink())
    return out


def test_tuned_smollm2_int4_for_phones_verifies_and_chats(tuned_run):
    result = _export(tuned_run, None, "int4", "mobile", speed=True)
    assert result.folder == tuned_run / "exports" / "onnx-int4-mobile"
    v = result.verification
    assert v["passed"], v["failures"]
    assert v["tokenizer"]["ok"] and v["logits"]["kl"] < 2.0
    stopping = [r for r in v["end_of_turn"]["runs"] if r["hf_stopped"]]
    assert stopping and all(r["forced_stop"] for r in stopping)
    assert 60 < result.size_mb < 140  # int4 + 8-bit sensitive layers of a 135M model
    assert result.speed["tokens_per_s"] > 0

    model = OnnxChatModel(result.folder)
    reply = "".join(model.stream([{"role": "user", "content": "What is the capital of France?"}], max_new_tokens=64))
    assert "Paris" in reply and model.last.stop_reason == "eos"
    assert "<|im_end|>" not in reply


@pytest.mark.parametrize("precision", ["int8", "fp16"])
def test_tuned_smollm2_int8_and_fp16_verify(tuned_run, precision):
    """int8 for CPUs, fp16 for GPUs (built for cuda, verified here on the CPU provider)."""
    result = _export(tuned_run, None, precision)
    v = result.verification
    assert v["passed"], v["failures"]
    assert v["logits"]["kl"] <= {"int8": 0.05, "fp16": 0.01}[precision]
    stopping = [r for r in v["end_of_turn"]["runs"] if r["hf_stopped"]]
    assert stopping and all(r["forced_stop"] for r in stopping)
    for r in stopping:  # each reply stops, or parted from HF's only at a near tie
        assert r["onnx_stopped"] or r["divergence"]["hf_logprob_gap"] <= v["bounds"]["tie_nats"]
    assert json.loads((result.folder / "export.json").read_text())["target"] == ("cpu" if precision == "int8" else "cuda")


def test_tuned_smollm2_fp32_matches_hf(tuned_run):
    result = _export(tuned_run, None, "fp32")
    v = result.verification
    assert v["passed"], v["failures"]
    assert v["logits"]["nmse"] <= 1e-4 and v["logits"]["top1"] >= 0.99
    assert all(r["same_tokens"] for r in v["end_of_turn"]["runs"])  # greedy text identical to the HF model
    assert (tuned_run / "adapter" / "adapter_config.json").is_file()  # a real LoRA run ...
    assert (tuned_run / "merged" / "config.json").is_file()  # ... merged on demand by the export

