"""ChatSession over the hf and gguf backends, the terminal chat and compare mode."""

from __future__ import annotations

import subprocess
import sys

import pytest

from engine.chat import ChatSession
from engine.errors import EdgetuneError
from tests.conftest import REPO

# Greedy answers of the bundled Q4_1 GGUF depend on llama.cpp's CPU kernels: "What is the capital of
# France?" got "Paris" from the AVX2 kernels but a rambling non-answer from the AVX-512 ones. This
# question gets "The capital city of France is Paris." from both the GGUF (AVX-512) and the HF model.
CONVERSATION = "Name the capital city of France."


@pytest.fixture(scope="module")
def bundled_gguf():
    from engine.models.bundled import bundled_gguf_path

    return str(bundled_gguf_path("smollm2-135m-instruct"))


@pytest.fixture(scope="module")
def hf_session(bundled_model_dir):
    return ChatSession(str(bundled_model_dir), temperature=0, max_tokens=24)


@pytest.fixture(scope="module")
def gguf_session(bundled_gguf):
    return ChatSession(bundled_gguf, temperature=0, max_tokens=96)


def test_hf_backend_streams_and_stops_at_end_of_turn(hf_session):
    hf_session.reset()
    chunks = list(hf_session.send(CONVERSATION))
    answer = "".join(chunks)
    assert len(chunks) > 1 and "Paris" in answer
    assert hf_session.last_stats["tokens"] < 24  # stopped at <|im_end|>, not at max_tokens
    assert "<|im_end|>" not in answer
    assert hf_session.history[-1] == {"role": "assistant", "content": answer}


def test_gguf_backend_answers_and_stops(gguf_session):
    gguf_session.reset()
    answer = gguf_session.ask(CONVERSATION)
    assert "Paris" in answer and gguf_session.last_stats["tokens"] < 96  # stopped at <|im_end|>


def test_same_token_ids_across_backends(hf_session, gguf_session):
    for s in (hf_session, gguf_session):
        s.reset()
        s.system = "Be brief."
    try:
        assert hf_session.prompt_ids(CONVERSATION) == gguf_session.prompt_ids(CONVERSATION)
    finally:
        hf_session.system = gguf_session.system = None


def test_history_and_reset(hf_session):
    hf_session.reset()
    hf_session.ask("Hi")
    assert len(hf_session.messages("again")) == 3
    hf_session.reset()
    assert hf_session.messages("again") == [{"role": "user", "content": "again"}]


def test_tiny_model_session_respects_max_tokens(tiny_model_dir):
    s = ChatSession(str(tiny_model_dir), temperature=0.8, top_k=5, max_tokens=5, seed=3)
    s.ask("hello")
    assert s.last_stats["tokens"] <= 5


def test_bad_references_are_explained(tmp_path):
    with pytest.raises(EdgetuneError, match="not found"):
        ChatSession(str(tmp_path / "missing.gguf"))
    with pytest.raises(EdgetuneError, match="no config.json"):
        ChatSession(str(tmp_path))


def test_gguf_without_template_offers_template_option(tmp_path, bundled_gguf):
    """Rewrite the bundled GGUF without its chat template: the error names --template."""
    import gguf

    reader = gguf.GGUFReader(bundled_gguf)
    out = tmp_path / "notemplate.gguf"
    writer = gguf.GGUFWriter(str(out), arch="llama")
    for field in reader.fields.values():
        if field.name.startswith("GGUF.") or field.name in ("general.architecture", "tokenizer.chat_template"):
            continue
        value = field.contents()
        vtype = field.types[0]
        if vtype == gguf.GGUFValueType.ARRAY:
            writer.add_key_value(field.name, value, vtype, sub_type=field.types[-1])
        else:
            writer.add_key_value(field.name, value, vtype)
    for t in reader.tensors:
        writer.add_tensor(t.name, t.data, raw_shape=t.data.shape, raw_dtype=t.tensor_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(EdgetuneError, match="--template"):
        ChatSession(str(out))
    s = ChatSession(str(out), template="chatml", temperature=0, max_tokens=16)
    assert "Paris" in s.ask(CONVERSATION)


def _engine(*args, stdin=""):
    return subprocess.run([sys.executable, "-m", "engine", *args], input=stdin, capture_output=True, text=True,
                          cwd=REPO, timeout=600)


@pytest.mark.slow
def test_piped_stdin_chat_answers_each_line(bundled_gguf):
    out = _engine("chat", bundled_gguf, "--temperature", "0", "--max-tokens", "24",
                  stdin=f"{CONVERSATION}\n/reset\nWhat is 2+2? Reply with the number.\n")
    assert out.returncode == 0, out.stderr
    lines = [l for l in out.stdout.splitlines() if l.strip()]
    assert "Paris" in lines[0] and lines[1] == "(history cleared)" and "4" in lines[2]


@pytest.mark.slow
def test_compare_mode_shows_models_side_by_side(bundled_gguf, bundled_model_dir):
    out = _engine("chat", "--compare", str(bundled_model_dir), bundled_gguf, "--temperature", "0",
                  "--max-tokens", "16", stdin=f"{CONVERSATION}\n")
    assert out.returncode == 0, out.stderr
    header = out.stdout.splitlines()[0]
    assert "hf:" in header and "gguf:" in header and header.count("tok/s") == 2
    assert out.stdout.count("Paris") >= 2


def test_models_too_big_for_free_memory_are_refused_before_loading(tiny_model_dir, tmp_path, monkeypatch):
    from engine.plan import machine

    monkeypatch.setattr(machine, "cpu_memory_gb", lambda: 0.01)
    with pytest.raises(EdgetuneError, match=r"needs about 0\.\d\d GB of memory to chat, but this machine has 0\.01 GB.*gguf"):
        ChatSession(str(tiny_model_dir))
    big = tmp_path / "big.gguf"
    with open(big, "wb") as f:
        f.truncate(4 * 2**30)  # sparse: only the size is read before refusing
    with pytest.raises(EdgetuneError, match=r"big\.gguf' needs about 4\.\d\d GB .*q4_k_m"):
        ChatSession(str(big))


def test_hf_model_without_template_asks_for_one(tiny_model_dir, tmp_path):
    """A base model (no chat template): the error names --template; a built-in one then works."""
    import json
    import shutil

    base = tmp_path / "base"
    shutil.copytree(tiny_model_dir, base)
    (base / "chat_template.jinja").unlink(missing_ok=True)
    cfg = json.loads((base / "tokenizer_config.json").read_text())
    cfg.pop("chat_template", None)
    (base / "tokenizer_config.json").write_text(json.dumps(cfg))
    with pytest.raises(EdgetuneError, match=r"no chat template.*--template NAME \(plain, chatml"):
        ChatSession(str(base))
    s = ChatSession(str(base), template="plain", max_tokens=3, temperature=0)
    assert s.prompt_ids("hi") and "### User:" in s.backend.tokenizer.decode(s.prompt_ids("hi"))
