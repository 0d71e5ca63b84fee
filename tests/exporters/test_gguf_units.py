"""Fast checks of the GGUF exporter's parts: registry, types, pre-tokenizers, chat turns, Modelfile,
safe writes, truncation detection and the errors a user can cause."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from engine.errors import EdgetuneError

REPO = Path(__file__).resolve().parents[2]


def test_cli_module_is_cheap_to_import():
    code = ("import sys\nimport exporters.gguf.cli\n"
            "heavy = [m for m in ('torch', 'transformers', 'llama_cpp', 'gguf') if m in sys.modules]\n"
            "assert not heavy, heavy\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_engine_export_lists_gguf():
    out = subprocess.run([sys.executable, "-m", "engine", "export", "gguf", "--help"], capture_output=True,
                         text=True, cwd=REPO)
    assert out.returncode == 0 and "--quant" in out.stdout and "--no-verify" in out.stdout


def test_every_family_is_registered_and_unknown_names_them():
    from exporters.gguf.registry import UnsupportedArchitecture, architecture_for, supported_architectures

    known = supported_architectures()
    for name in ("LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM",
                 "Gemma2ForCausalLM", "Gemma3ForCausalLM", "Phi3ForCausalLM"):
        assert name in known
    with pytest.raises(UnsupportedArchitecture) as e:
        architecture_for({"architectures": ["MambaForCausalLM"], "num_hidden_layers": 2}, Path("m"))
    assert "MambaForCausalLM" in str(e.value) and "Qwen2ForCausalLM" in str(e.value)


def test_gemma_attention_scale_mismatch_is_refused():
    from exporters.gguf.registry import architecture_for

    cfg = {"architectures": ["Gemma2ForCausalLM"], "num_hidden_layers": 2, "hidden_size": 64,
           "num_attention_heads": 4, "head_dim": 16, "query_pre_attn_scalar": 256}
    with pytest.raises(EdgetuneError, match="query_pre_attn_scalar"):
        architecture_for(cfg, Path("m"))


def test_quant_names():
    from exporters.gguf.qtypes import gguf_type, parse_quant_list

    assert parse_quant_list("q8_0, Q4_K_M,f16,q8_0") == ["q8_0", "q4_k_m", "f16"]
    assert gguf_type("q4_k_m").ftype == 15 and not gguf_type("q4_k_m").direct and gguf_type("bf16").direct
    with pytest.raises(EdgetuneError, match="q4_k_m"):
        parse_quant_list("q4_x")


@pytest.mark.parametrize("steps,name", [
    ([{"type": "Digits", "individual_digits": True}, {"type": "ByteLevel", "use_regex": True}], "smollm"),
    ([{"type": "ByteLevel", "use_regex": True}], "gpt-2"),
])
def test_pre_tokenizer_from_splitting_rules(steps, name):
    from exporters.gguf.pretokenizer import detect_pre_tokenizer

    tj = {"pre_tokenizer": {"type": "Sequence", "pretokenizers": steps}, "normalizer": None}
    assert detect_pre_tokenizer(tj, "x") == name


def test_pre_tokenizer_regexes_and_unknown():
    from exporters.gguf.pretokenizer import LLAMA3_REGEX, QWEN2_REGEX, detect_pre_tokenizer

    def tj(regex):
        return {"pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated"},
            {"type": "ByteLevel", "use_regex": False}]}}

    assert detect_pre_tokenizer(tj(LLAMA3_REGEX), "x") == "llama-bpe"
    assert detect_pre_tokenizer(tj(QWEN2_REGEX), "x") == "qwen2"
    with pytest.raises(EdgetuneError, match="--pre-tokenizer"):
        detect_pre_tokenizer(tj(r"\w+"), "x")


def test_turn_format_of_real_templates(smol_tokenizer):
    from exporters.gguf.chat_format import analyse_tokenizer, render_function
    from tests.exporters.test_gguf_fixtures import GEMMA_TEMPLATE, PHI3_TEMPLATE

    fmt = analyse_tokenizer(smol_tokenizer)
    assert fmt.default_system.startswith("You are a helpful AI assistant named SmolLM")
    assert fmt.suffix["assistant"] == "<|im_end|>\n" and fmt.generation_prompt == "<|im_start|>assistant\n"
    assert fmt.matches(render_function(smol_tokenizer)) == []
    tok = type(smol_tokenizer).from_pretrained(smol_tokenizer.name_or_path)
    for template, eot in ((GEMMA_TEMPLATE, "<end_of_turn>\n"), (PHI3_TEMPLATE, "<|end|>\n")):
        tok.chat_template = template
        fmt = analyse_tokenizer(tok)
        assert fmt.suffix["assistant"] == eot
        assert fmt.matches(render_function(tok)) == []
    tok.chat_template = GEMMA_TEMPLATE
    assert analyse_tokenizer(tok).supports_system is False and analyse_tokenizer(tok).bos_in_head


def test_modelfile_from_template(smol_tokenizer):
    from exporters.gguf.chat_format import analyse_tokenizer, render_function
    from exporters.gguf.modelfile import render_modelfile, stop_strings, template_check

    fmt = analyse_tokenizer(smol_tokenizer)
    stops = stop_strings(fmt, "<|im_end|>", "<|im_end|>")
    text = render_modelfile("model-q8_0.gguf", fmt, stops, False, "smol", "exports/smol/Modelfile")
    assert "FROM ./model-q8_0.gguf" in text and 'PARAMETER stop "<|im_end|>"' in text
    assert 'PARAMETER stop "<|im_start|>"' in text and "SYSTEM \"\"\"You are a helpful" in text
    assert '{{ if eq .Role "user" }}<|im_start|>user\n{{ .Content }}<|im_end|>\n' in text
    assert "{{-" not in text  # trim markers would eat the newlines of the turns
    assert template_check(fmt, render_function(smol_tokenizer), smol_tokenizer.bos_token, False) == []


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    from exporters.safe_write import atomic_path

    final = tmp_path / "model.gguf"
    with pytest.raises(RuntimeError):
        with atomic_path(final) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_unwritable_folder_and_full_disk_are_clear_errors(tmp_path, monkeypatch):
    import shutil as sh

    from exporters.safe_write import check_free_space, ensure_writable_dir

    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(EdgetuneError, match="--out"):
        ensure_writable_dir(blocker / "sub")
    monkeypatch.setattr(sh, "disk_usage", lambda p: type("U", (), {"free": 10_000})())
    with pytest.raises(EdgetuneError, match="Not enough disk space"):
        check_free_space(tmp_path, 1_000_000, "the f16 GGUF")


def test_full_disk_stops_the_export_before_writing(tiny_model_dir, tmp_path, monkeypatch):
    import shutil as sh

    from exporters.gguf.convert import convert_hf_to_gguf

    monkeypatch.setattr(sh, "disk_usage", lambda p: type("U", (), {"free": 1000})())
    with pytest.raises(EdgetuneError, match="disk space"):
        convert_hf_to_gguf(tiny_model_dir, tmp_path / "m.gguf", "f16")
    assert list(tmp_path.iterdir()) == []


def test_truncated_gguf_is_detected(tiny_model_dir, tmp_path):
    from exporters.gguf.convert import convert_hf_to_gguf
    from engine.formats.gguf_integrity import DamagedGguf, check_gguf

    path = convert_hf_to_gguf(tiny_model_dir, tmp_path / "m.gguf", "f16").path
    assert check_gguf(path)["tensors"] > 0
    data = path.read_bytes()
    for cut in (len(data) - 64, len(data) // 2, 40):
        bad = tmp_path / f"cut{cut}.gguf"
        bad.write_bytes(data[:cut])
        with pytest.raises(DamagedGguf):
            check_gguf(bad)
    assert not any(p.name.endswith(".partial") for p in tmp_path.iterdir())


def test_truncated_gguf_as_input_is_named_everywhere(tiny_model_dir, tmp_path, monkeypatch):
    """A cut-short .gguf given to chat, to llama.cpp's loader or as a model source: the same clear message."""
    from engine.chat import ChatSession
    from engine.models.gguf_import import materialise_gguf
    from exporters.gguf.convert import convert_hf_to_gguf
    from engine.runtimes.llama import load_llama

    monkeypatch.setenv("EDGETUNE_HOME", str(tmp_path / "home"))
    path = convert_hf_to_gguf(tiny_model_dir, tmp_path / "m.gguf", "f16").path
    bad = tmp_path / "cut.gguf"
    bad.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    for attempt in (lambda: ChatSession(str(bad)), lambda: load_llama(bad), lambda: materialise_gguf(bad)):
        with pytest.raises(EdgetuneError, match=r"cut.gguf' is truncated.*Export or download it again"):
            attempt()
    assert not (tmp_path / "home").exists() or not any((tmp_path / "home").rglob("*.safetensors"))


def test_disk_filling_up_mid_write_is_a_clear_error(tmp_path, monkeypatch):
    """numpy's short write carries no errno ('N requested and M written'): still named a full disk."""
    import shutil as sh

    from exporters.safe_write import atomic_path

    monkeypatch.setattr(sh, "disk_usage", lambda p: type("U", (), {"free": 4096})())
    final = tmp_path / "model.gguf"
    with pytest.raises(EdgetuneError, match=r"disk filled up while writing .*model.gguf"):
        with atomic_path(final) as tmp:
            tmp.write_bytes(b"half")
            raise OSError("884736 requested and 482224 written")
    assert list(tmp_path.iterdir()) == []


def test_interrupt_during_the_quantizer_is_raised_when_it_returns():
    """Ctrl-C / SIGTERM while llama.cpp quantises (a C call whose Python log callback swallows exceptions)."""
    import os
    import signal

    from exporters.gguf.quantize import interrupts_deferred

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        with interrupts_deferred():
            os.kill(os.getpid(), signal.SIGTERM)  # arrives "inside the C call"
            reached_the_end = True
    assert reached_the_end and signal.getsignal(signal.SIGTERM) is before


def test_unsupported_architecture_creates_no_folder(tmp_path):
    import json

    from exporters.gguf.exporter import GgufExporter

    src = tmp_path / "gpt2"
    src.mkdir()
    (src / "config.json").write_text(json.dumps({"architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"}))
    with pytest.raises(EdgetuneError, match="GPT2LMHeadModel"):
        GgufExporter(src, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_adapter_flag_on_a_plain_model_fails_before_exporting(tiny_model_dir, tmp_path, capsys):
    from engine.cli.main import main

    assert main(["export", "gguf", str(tiny_model_dir), "--adapter", "--out", str(tmp_path / "out")]) == 2
    assert "--adapter needs a run folder" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_missing_tokenizer_and_quantised_checkpoint_are_refused(tiny_model_dir, tmp_path):
    from exporters.gguf.convert import GgufConverter

    no_tok = tmp_path / "no-tok"
    no_tok.mkdir()
    for f in ("config.json", "model.safetensors"):
        shutil.copy(tiny_model_dir / f, no_tok / f)
    with pytest.raises(EdgetuneError, match="no tokenizer"):
        GgufConverter(no_tok)
    quant = tmp_path / "bnb"
    shutil.copytree(tiny_model_dir, quant)
    cfg = json.loads((quant / "config.json").read_text())
    cfg["quantization_config"] = {"quant_method": "bitsandbytes", "load_in_4bit": True}
    (quant / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(EdgetuneError, match="merged"):
        GgufConverter(quant)
    unknown = tmp_path / "mamba"
    shutil.copytree(tiny_model_dir, unknown)
    cfg = json.loads((unknown / "config.json").read_text())
    cfg["architectures"] = ["MambaForCausalLM"]
    (unknown / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(EdgetuneError, match="Supported: .*LlamaForCausalLM"):
        GgufConverter(unknown)


def test_cli_error_is_one_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "engine", "export", "gguf", str(tmp_path), "--quant", "q8_0",
                          "--out", str(tmp_path / "o")], capture_output=True, text=True, cwd=REPO,
                         env={**__import__("os").environ, "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 2 and "Traceback" not in out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "config.json" in last


def test_stream_plan_matches_written_file(tiny_model_dir, tmp_path):
    import gguf

    from exporters.gguf.convert import GgufConverter

    conv = GgufConverter(tiny_model_dir)
    plan = conv.plan("q8_0")
    out = tmp_path / "m.gguf"
    conv.write(out, "q8_0")
    reader = gguf.GGUFReader(str(out))
    written = {t.name: (t.tensor_type, int(t.n_bytes)) for t in reader.tensors}
    assert written == {p.gguf_name: (p.qtype, p.nbytes) for p in plan}
    # norms stay f32; 64-wide rows split into q8_0 blocks of 32
    assert written["blk.0.attn_norm.weight"][0] == gguf.GGMLQuantizationType.F32
    assert written["blk.0.attn_q.weight"][0] == gguf.GGMLQuantizationType.Q8_0
