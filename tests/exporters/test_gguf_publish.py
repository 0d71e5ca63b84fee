"""A GGUF reaches its final name only with its verify.json entry (exporters/gguf/staging.py).

Tiny random Llama (tests/conftest.py): an interrupted verification publishes nothing it did not
verify and leaves no staged file; a finished export, the --adapter pair included, has an entry
for every .gguf in the folder; --no-verify writes straight to the final name.
"""

from __future__ import annotations

import json

import pytest

pytest.importorskip("llama_cpp")


def _interrupt_after(monkeypatch, n: int, when=lambda kwargs: True) -> list:
    """verify_gguf runs for real `n` times (among the calls `when` selects), then raises KeyboardInterrupt."""
    from exporters.gguf import verify

    real, calls = verify.verify_gguf, []

    def verify_then_interrupt(*args, **kwargs):
        if when(kwargs):
            calls.append(args[0])
            if len(calls) > n:
                raise KeyboardInterrupt  # Ctrl-C, or the app's Cancel (SIGTERM unwinds the same way)
        return real(*args, **kwargs)

    monkeypatch.setattr(verify, "verify_gguf", verify_then_interrupt)
    return calls


def _ggufs(folder) -> list:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".gguf"))


def _entries(folder) -> set:
    path = folder / "verify.json"
    return set(json.loads(path.read_text())["files"]) if path.is_file() else set()


def _leftovers(folder) -> list:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") and not p.name.endswith(".source.json"))


def test_an_interrupt_never_splits_a_file_from_its_report(tmp_path, monkeypatch):
    """Ctrl-C / SIGTERM between writing the verify.json entry and the rename takes effect after the rename."""
    import os
    import signal

    from exporters.gguf import verify
    from exporters.gguf.staging import Staging

    real = verify.save_reports

    def save_then_terminate(*args, **kwargs):
        real(*args, **kwargs)
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C right between the two steps (SIGINT: a test process survives it)

    monkeypatch.setattr(verify, "save_reports", save_then_terminate)
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        with Staging(tmp_path) as staging:
            path = staging.target(tmp_path / "model-f16.gguf")
            path.write_bytes(b"GGUF")
            staging.publish([verify.VerifyReport("model-f16.gguf", "f16", 4)], path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model-f16.gguf", "verify.json"]
    assert _entries(tmp_path) == {"model-f16.gguf"} and signal.getsignal(signal.SIGINT) is before


@pytest.mark.parametrize("verified_first", [0, 1])
def test_interrupted_verification_publishes_only_what_was_verified(tiny_model_dir, tmp_path, monkeypatch,
                                                                  verified_first):
    from exporters.gguf.exporter import GgufExporter

    calls = _interrupt_after(monkeypatch, verified_first)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        GgufExporter(tiny_model_dir, out).export(["f16", "q4_k_m"], modelfile=False)
    assert all(p.name.endswith(".staged") for p in calls)  # verification reads the staged file
    assert _ggufs(out) == (["model-f16.gguf"] if verified_first else [])
    assert _entries(out) == set(_ggufs(out))  # the published file has its report; nothing else does
    assert _leftovers(out) == []  # no .staged, .partial or .intermediate file


def test_every_published_gguf_has_its_report(tiny_model_dir, tmp_path):
    from exporters.gguf.exporter import GgufExporter

    out = tmp_path / "out"
    result = GgufExporter(tiny_model_dir, out).export(["q8_0", "q4_k_m"], modelfile=False)
    assert _ggufs(out) == ["model-q4_k_m.gguf", "model-q8_0.gguf"] and _leftovers(out) == []
    assert _entries(out) == set(_ggufs(out))  # reports name the final files, not the staged ones
    assert sorted(f.path.name for f in result.files) == _ggufs(out) and all(f.path.parent == out for f in result.files)


def test_a_failing_file_is_still_published_with_its_failing_report(tiny_model_dir, tmp_path, monkeypatch):
    """Today's contract (the CLI warns and exits 1) is kept: the file and its FAIL report appear together."""
    from exporters.gguf import verify
    from exporters.gguf.exporter import GgufExporter

    real = verify.verify_gguf

    def failing(*args, **kwargs):
        rep = real(*args, **kwargs)
        rep.problems.append("made to fail by the test")
        rep.passed = False
        return rep

    monkeypatch.setattr(verify, "verify_gguf", failing)
    out = tmp_path / "out"
    result = GgufExporter(tiny_model_dir, out).export(["f16"], modelfile=False)
    assert not result.passed and _ggufs(out) == ["model-f16.gguf"] and _leftovers(out) == []
    assert json.loads((out / "verify.json").read_text())["files"]["model-f16.gguf"]["passed"] is False


def test_no_verify_writes_straight_to_the_final_name(tiny_model_dir, tmp_path):
    from exporters.gguf.exporter import GgufExporter

    out = tmp_path / "out"
    GgufExporter(tiny_model_dir, out).export(["q8_0"], verify=False, modelfile=False)
    assert sorted(p.name for p in out.iterdir()) == ["model-q8_0.gguf"]


@pytest.fixture
def tiny_lora_run(tiny_model_dir, tmp_path):
    """A run folder as `engine train` leaves it: config.yaml naming the tiny base, a LoRA adapter."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run = tmp_path / "runs" / "tiny-run"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(f"model:\n  name_or_path: {tiny_model_dir}\n", encoding="utf-8")
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)),
                           LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    model.save_pretrained(str(run / "adapter"))
    AutoTokenizer.from_pretrained(str(tiny_model_dir)).save_pretrained(str(run / "adapter"))
    return run


def test_adapter_pair_is_published_with_its_reports(tiny_lora_run, tmp_path, monkeypatch):
    """--adapter: base-f16.gguf + adapter-f16.gguf are verified as a pair, then published with their entries."""
    from engine.runs import model_dir_for
    from exporters.gguf.adapter_export import export_run_adapter
    from exporters.gguf.exporter import GgufExporter

    out = tmp_path / "exports"
    exporter = GgufExporter(model_dir_for(tiny_lora_run), out)  # its reference: the merged run model
    calls = _interrupt_after(monkeypatch, 0)
    with pytest.raises(KeyboardInterrupt):
        export_run_adapter(tiny_lora_run, out, exporter)
    assert [p.name for p in calls] == [".base-f16.gguf.staged"]
    assert _ggufs(out) == [] and _entries(out) == set() and _leftovers(out) == []

    monkeypatch.undo()
    (report,) = export_run_adapter(tiny_lora_run, out, exporter)
    exporter.close()
    assert report.file == "adapter-f16.gguf" and report.passed, report.problems
    assert _ggufs(out) == ["adapter-f16.gguf", "base-f16.gguf"]
    assert _entries(out) == set(_ggufs(out)) and _leftovers(out) == []
    assert json.loads((out / "verify.json").read_text())["files"]["base-f16.gguf"]["type"] == "f16, base of adapter-f16.gguf"
