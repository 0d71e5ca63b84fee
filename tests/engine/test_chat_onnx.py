"""The ONNX chat backend against the hf and gguf backends on one tiny model.

The conftest's tiny random Llama, reshaped so that it answers in words and greedy decoding
of one known prompt ends the turn after a few tokens (`eot_model`), is exported once to ONNX
fp32 and converted to GGUF f32. The same conversation must give the same prompt ids on all
three backends, ONNX greedy answers must equal the HF model's token for token, the turn must
end at <|im_end|>, and `engine chat <onnx folder>` must answer piped stdin one line per message.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from engine.chat import ChatSession
from engine.errors import EdgetuneError
from tests.conftest import REPO

STOP_QUESTION = "What is the capital of France?"  # greedy answer: a few tokens, then <|im_end|>
HISTORY = [{"role": "user", "content": "Hi! Ünïcode café 你好 🙂, code: def f(x): return x"},
           {"role": "assistant", "content": "Hello.\nHow can I help?"}]
GREEDY = dict(temperature=0, repeat_penalty=1.0)


def _prompt_ids(model_dir, messages) -> list[int]:
    from engine.chat.template import render_prompt
    from engine.models.loading import tokenizer_from_dir

    tok = tokenizer_from_dir(model_dir)
    text = render_prompt(tok.chat_template, messages, tok.bos_token, tok.eos_token)
    return tok(text, add_special_tokens=False)["input_ids"]


@pytest.fixture(scope="module")
def eot_model(tiny_model_dir, tmp_path_factory):
    """The tiny model made to talk: returns (folder, answer_ids), where greedy decoding of
    STOP_QUESTION gives answer_ids and then <|im_end|>.

    At init scale (std 0.02) the tiny model answers "\n" forever. Scaled-up embeddings and
    layers make the next token depend on the context, and an untied output layer that only
    knows lowercase words keeps answers on one line and free of partial UTF-8. The <|im_end|>
    row points along the hidden state of answer step k, so the turn ends there by a clear
    margin; the earlier steps are untouched (their logits for it stay well below the best).
    """
    import re

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32).eval()
    eos = tok.eos_token_id
    words = torch.tensor([bool(re.fullmatch(r"Ġ[a-z]{3,}", t)) for t in tok.convert_ids_to_tokens(list(range(len(tok))))])
    with torch.no_grad():
        model.model.embed_tokens.weight.mul_(50)
        for p in model.model.layers.parameters():
            if p.dim() == 2:
                p.mul_(5)
        head = torch.randn(len(tok), model.config.hidden_size, generator=torch.Generator().manual_seed(1)) * words[:, None]
    model.config.tie_word_embeddings = False
    model.lm_head.weight = torch.nn.Parameter(head)

    ids = _prompt_ids(tiny_model_dir, [{"role": "user", "content": STOP_QUESTION}])
    hidden, best, answer = [], [], []
    with torch.no_grad():
        for _ in range(10):
            h = model.model(torch.tensor([ids + answer])).last_hidden_state[0, -1]
            logits = model.lm_head(h)
            hidden.append(h)
            best.append(float(logits.max()))
            answer.append(int(logits.argmax()))
    for k in range(4, 10):
        row = hidden[k] * (best[k] + 1.0) / float(hidden[k] @ hidden[k])
        if all(float(row @ hidden[i]) < best[i] - 1.0 for i in range(k)):
            break
    else:
        pytest.fail("no step of the tiny model's greedy answer can be made to end the turn")
    with torch.no_grad():
        model.lm_head.weight[eos] = row
    out = tmp_path_factory.mktemp("tiny-eot")
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return out, answer[:k]


@pytest.fixture(scope="module")
def eot_onnx(eot_model, tmp_path_factory):
    """eot_model exported to ONNX fp32 (no verification or timing: the tests below compare)."""
    from engine.events import EventSink
    from exporters.onnx.exporter import OnnxExporter

    out = tmp_path_factory.mktemp("tiny-eot-exports") / "onnx-fp32"
    OnnxExporter(eot_model[0], precision="fp32", out=out, verify=False, speed=False, sink=EventSink(),
                 say=lambda s: None).run()
    return out


@pytest.fixture(scope="module")
def eot_gguf(eot_model, tmp_path_factory):
    from exporters.gguf.convert import convert_hf_to_gguf

    return convert_hf_to_gguf(eot_model[0], tmp_path_factory.mktemp("tiny-eot-gguf") / "model-f32.gguf", "f32").path


@pytest.fixture(scope="module")
def sessions(eot_model, eot_onnx, eot_gguf):
    return {"hf": ChatSession(str(eot_model[0]), **GREEDY, max_tokens=16),
            "onnx": ChatSession(str(eot_onnx), **GREEDY, max_tokens=16),
            "gguf": ChatSession(str(eot_gguf), **GREEDY, max_tokens=16)}


def _engine(*args, stdin=""):
    return subprocess.run([sys.executable, "-m", "engine", *args], input=stdin, capture_output=True, text=True,
                          cwd=REPO, timeout=600)


@pytest.mark.slow
def test_same_prompt_ids_on_every_backend(sessions):
    """System prompt, a past exchange with unicode, code and a newline, then a question holding a
    special token's text (every backend reads it as that token)."""
    for s in sessions.values():
        s.system, s.history = "Be brief.", [dict(m) for m in HISTORY]
    try:
        ids = {name: s.prompt_ids("And now? <|im_start|> inside a message") for name, s in sessions.items()}
        assert ids["onnx"] == ids["hf"] == ids["gguf"]
        assert sessions["onnx"].backend.label.startswith("onnx:")
    finally:
        for s in sessions.values():
            s.system = None
            s.reset()


@pytest.mark.slow
def test_greedy_answer_matches_hf_and_stops_at_end_of_turn(sessions, eot_model):
    hf, onnx = sessions["hf"], sessions["onnx"]
    for s in (hf, onnx):
        s.reset()
    chunks = list(onnx.send(STOP_QUESTION))
    answer_ids = eot_model[1]
    assert onnx.backend.model.last.ids == answer_ids  # token for token what HF's greedy loop chose
    assert onnx.backend.model.last.stop_reason == "eos" and onnx.last_stats["tokens"] == len(answer_ids) < 16
    assert "".join(chunks) == hf.ask(STOP_QUESTION) and hf.last_stats["tokens"] == len(answer_ids)
    assert "<|im_end|>" not in "".join(chunks)
    assert onnx.history == hf.history  # the answers joined both histories alike


@pytest.mark.slow
def test_greedy_second_turn_matches_hf_generate(sessions):
    """A follow-up with the first exchange in the history: ONNX's tokens are transformers' generate()'s."""
    import torch

    hf, onnx = sessions["hf"], sessions["onnx"]
    for s in (hf, onnx):
        s.reset()
        s.ask(STOP_QUESTION)
    ids = onnx.prompt_ids("Tell me more.")
    onnx_text = onnx.ask("Tell me more.")
    eos = hf.backend.tokenizer.eos_token_id
    with torch.no_grad():
        out = hf.backend.model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                        max_new_tokens=16, do_sample=False, eos_token_id=eos, pad_token_id=eos)
    ref = out[0, len(ids):].tolist()
    stopped = eos in ref
    assert onnx.backend.model.last.ids == (ref[:ref.index(eos)] if stopped else ref)
    assert onnx.backend.model.last.stop_reason == ("eos" if stopped else "length")
    assert onnx_text == hf.ask("Tell me more.")


@pytest.mark.slow
def test_sampling_is_reproducible_with_a_seed(eot_onnx):
    a = ChatSession(str(eot_onnx), temperature=1.0, top_k=50, top_p=0.9, max_tokens=12, seed=7)
    b = ChatSession(str(eot_onnx), temperature=1.0, top_k=50, top_p=0.9, max_tokens=12, seed=7)
    assert a.ask("hello") == b.ask("hello")
    assert a.backend.model.last.ids == b.backend.model.last.ids


@pytest.mark.slow
def test_piped_stdin_answers_one_line_per_message(eot_onnx, sessions):
    sessions["onnx"].reset()
    expected = sessions["onnx"].ask(STOP_QUESTION)
    out = _engine("chat", str(eot_onnx), "--temperature", "0", "--repeat-penalty", "1", "--max-tokens", "16",
                  stdin=f"{STOP_QUESTION}\n/reset\n{STOP_QUESTION}\n")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [expected, "(history cleared)", expected]


def test_model_larger_than_free_memory_is_refused_before_loading(tmp_path, monkeypatch):
    """A (sparse) 8 GB export on a machine with 2 GB free: the error names the folder and the fix."""
    pytest.importorskip("onnxruntime_genai")
    from engine.plan import machine

    folder = tmp_path / "onnx-fp32"
    folder.mkdir()
    decoder = {"num_hidden_layers": 32, "num_key_value_heads": 8, "head_size": 128, "hidden_size": 4096,
               "num_attention_heads": 32, "filename": "model.onnx"}
    (folder / "genai_config.json").write_text(json.dumps({"model": {"decoder": decoder, "context_length": 8192},
                                                          "search": {"max_length": 8192}}))
    (folder / "model.onnx").write_bytes(b"")
    (folder / "export.json").write_text(json.dumps({"source": "runs/big", "precision": "fp32"}))
    with open(folder / "model.onnx.data", "wb") as f:
        f.truncate(8 * 2**30)  # no blocks written: the size is all the estimate reads
    monkeypatch.setattr(machine, "cpu_memory_gb", lambda: 2.0)
    with pytest.raises(EdgetuneError, match=r"onnx-fp32' needs about 1\d\.\d\d GB .* 2\.00 GB available.*engine export onnx runs/big --precision int4"):
        ChatSession(str(folder))


def test_memory_estimate_counts_weights_and_kv_cache(tmp_path):
    from engine.runtimes.onnx_genai import RUNTIME_OVERHEAD_GB, WEIGHTS_FACTOR, memory_needed_gb

    decoder = {"num_hidden_layers": 2, "num_key_value_heads": 2, "head_size": 16, "hidden_size": 64,
               "num_attention_heads": 4}
    (tmp_path / "genai_config.json").write_text(json.dumps({"model": {"decoder": decoder}, "search": {"max_length": 512}}))
    (tmp_path / "model.onnx.data").write_bytes(b"\0" * 2**20)
    (tmp_path / "tokenizer.json").write_bytes(b"\0" * 2**20)  # not weights
    kv = 2 * 2 * 2 * 16 * 4 * 512  # k and v, layers, heads, head size, fp32, the window (< 2048)
    assert memory_needed_gb(tmp_path) == pytest.approx((WEIGHTS_FACTOR * 2**20 + kv) / 2**30 + RUNTIME_OVERHEAD_GB)


def test_engine_chat_imports_no_onnx_runtime_or_qt():
    code = ("import sys, engine.chat, engine.chat.backends.onnx; "
            "bad = [m for m in ('engine.runtimes.onnx_genai', 'onnxruntime_genai', 'PySide6') if m in sys.modules]; "
            "assert not bad, bad")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
