"""`engine serve` end to end: the real server as a child process on a free loopback port, spoken
to with the official `openai` client, for an HF run (adapter on its base), a GGUF and an ONNX
export of one tiny model (test_chat_onnx's `eot_model`, whose greedy answer ends the turn after a
few tokens). Each must give `engine chat`'s greedy answer (ChatSession, in-process), stop at
end-of-turn, and count tokens; streamed and not."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
openai = pytest.importorskip("openai")

from engine.chat import ChatSession  # noqa: E402
from tests.engine.serve_support import ServeProcess  # noqa: E402
from tests.engine.test_chat_onnx import STOP_QUESTION, eot_gguf, eot_model, eot_onnx  # noqa: E402,F401  (fixtures)

GREEDY = dict(temperature=0, max_tokens=16)
EXTRA = {"repeat_penalty": 1.0}  # the eot model's answer is built for plain greedy decoding


@pytest.fixture(scope="module")
def eot_run(eot_model, tmp_path_factory):
    """A run folder as `engine train` leaves it: config.yaml naming the base, a LoRA adapter (+ tokenizer)."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run = tmp_path_factory.mktemp("runs") / "tiny-run"
    run.mkdir()
    (run / "config.yaml").write_text(f"model:\n  name_or_path: {eot_model[0]}\n", encoding="utf-8")
    base = AutoModelForCausalLM.from_pretrained(str(eot_model[0]))
    peft = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
    peft.save_pretrained(str(run / "adapter"))
    AutoTokenizer.from_pretrained(str(eot_model[0])).save_pretrained(str(run / "adapter"))
    return run


@pytest.fixture(scope="module")
def specs(eot_run, eot_gguf, eot_onnx):
    return {"run": str(eot_run), "gguf": str(eot_gguf), "onnx": str(eot_onnx)}


@pytest.fixture(scope="module")
def server(specs):
    proc = ServeProcess(*(f"{name}={spec}" for name, spec in specs.items()))
    try:
        yield proc
    finally:
        assert proc.stop() == 0, "".join(proc.stderr)[-2000:]


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0, timeout=120)


@pytest.fixture(scope="module")
def expected(specs):
    """What `engine chat` answers, greedy, with the same options: (text, generated tokens, prompt tokens)."""
    out = {}
    for name, spec in specs.items():
        s = ChatSession(spec, repeat_penalty=1.0, **GREEDY)
        text = s.ask(STOP_QUESTION)
        out[name] = (text, s.last_stats["tokens"], s.last_stats["prompt_tokens"])
    return out


MESSAGES = [{"role": "user", "content": STOP_QUESTION}]


def test_models_are_listed_by_the_names_given(client):
    assert [m.id for m in client.models.list().data] == ["run", "gguf", "onnx"]


@pytest.mark.parametrize("name", ["run", "gguf", "onnx"])
def test_greedy_reply_equals_engine_chat_and_stops_at_end_of_turn(client, expected, name):
    text, tokens, prompt_tokens = expected[name]
    r = client.chat.completions.create(model=name, messages=MESSAGES, extra_body=EXTRA, **GREEDY)
    assert r.choices[0].message.content == text and text
    assert r.choices[0].finish_reason == "stop" and tokens < GREEDY["max_tokens"]  # end-of-turn, not the cap
    assert (r.usage.prompt_tokens, r.usage.completion_tokens) == (prompt_tokens, tokens)
    assert r.usage.total_tokens == prompt_tokens + tokens and r.model == name


@pytest.mark.parametrize("name", ["run", "gguf", "onnx"])
def test_streamed_reply_equals_engine_chat_with_usage(client, expected, name):
    text, tokens, prompt_tokens = expected[name]
    chunks = list(client.chat.completions.create(model=name, messages=MESSAGES, stream=True, extra_body=EXTRA,
                                                 stream_options={"include_usage": True}, **GREEDY))
    pieces = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert "".join(pieces) == text and sum(1 for p in pieces if p) >= 2
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage.completion_tokens == tokens and chunks[-1].usage.prompt_tokens == prompt_tokens


def test_text_completion_stop_strings_and_system_prompt(client, expected, specs):
    text = expected["gguf"][0]
    cut = text.split()[1]  # the answer's second word as a stop string
    r = client.chat.completions.create(model="gguf", messages=MESSAGES, stop=[cut], extra_body=EXTRA, **GREEDY)
    assert r.choices[0].message.content == text[:text.index(cut)] and r.choices[0].finish_reason == "stop"
    r = client.completions.create(model="onnx", prompt="The capital of France is", max_tokens=4, temperature=0)
    assert r.choices[0].finish_reason in ("stop", "length") and r.usage.completion_tokens <= 4
    with_system = [{"role": "system", "content": "Be brief."}] + MESSAGES
    r = client.chat.completions.create(model="run", messages=with_system, max_tokens=2, temperature=0)
    # the system turn went through the template (it replaces SmolLM2's default system prompt)
    assert r.usage.prompt_tokens == len(ChatSession(specs["run"], system="Be brief.").prompt_ids(STOP_QUESTION))


def test_events_report_loads_and_requests(server, client):
    client.chat.completions.create(model="gguf", messages=MESSAGES, max_tokens=2)
    types = [e["type"] for e in server.events]
    assert types[0] == "serve_started" and server.events[0]["models"] == ["run", "gguf", "onnx"]
    loaded = {e["model"]: e["label"] for e in server.events if e["type"] == "model_loaded"}
    assert loaded["gguf"].startswith("gguf:") and loaded["onnx"].startswith("onnx:") and "+adapter" in loaded["run"]
    served = [e for e in server.events if e["type"] == "serve_request" and e["path"] == "/v1/chat/completions"]
    assert served and all(e["status"] == 200 and e["completion_tokens"] >= 1 for e in served)
    assert any("POST /v1/chat/completions 200 model=gguf" in line for line in server.stderr)


@pytest.mark.slow
def test_bundled_model_q8_0_gguf_answers_like_engine_chat(bundled_model_dir, tmp_path):
    """The real SmolLM2 as a q8_0 GGUF: served greedy answer == ChatSession's, names Paris, stops."""
    from exporters.gguf.convert import convert_hf_to_gguf
    from tests.engine.test_chat import CONVERSATION

    gguf = convert_hf_to_gguf(bundled_model_dir, tmp_path / "model-q8_0.gguf", "q8_0").path
    session = ChatSession(str(gguf), temperature=0, max_tokens=64)
    text = session.ask(CONVERSATION)
    proc = ServeProcess(str(gguf))
    try:
        c = openai.OpenAI(base_url=proc.url, api_key="unused", max_retries=0, timeout=120)
        r = c.chat.completions.create(model="model-q8_0", messages=[{"role": "user", "content": CONVERSATION}],
                                      temperature=0, max_tokens=64)
        assert r.choices[0].message.content == text and "Paris" in text
        assert r.choices[0].finish_reason == "stop" and r.usage.completion_tokens == session.last_stats["tokens"]
    finally:
        assert proc.stop() == 0
