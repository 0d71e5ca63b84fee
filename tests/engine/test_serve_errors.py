"""`engine serve` against bad and hostile input: every case gets its status and an OpenAI-style
error body, never a traceback, and the server keeps answering. A fake backend (one token per
character of a fixed text, a few ms each) keeps these tests fast and lets them time generations."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from engine.errors import EdgetuneError  # noqa: E402
from tests.conftest import REPO  # noqa: E402
from tests.engine.serve_support import ServeProcess, serving  # noqa: E402

KEY = "test-key-0123456789"


class FakeBackend:
    """Answers 'abcdefghij...' one character per token, `delay` seconds each; counts what it generated."""

    label = "fake:model"

    def __init__(self, delay: float = 0.0, length: int = 26):
        self.delay, self.length, self.generated, self.last_count = delay, length, 0, 0

    def prompt_ids(self, messages):
        return self.encode("".join(m["content"] for m in messages))

    def encode(self, text):
        return [ord(c) for c in text]

    def stream(self, ids, params):
        self.last_count = 0
        for i in range(min(self.length, params.max_tokens)):
            time.sleep(self.delay)
            self.generated += 1
            self.last_count += 1
            yield "abcdefghijklmnopqrstuvwxyz"[i % 26]


def make_app(backend, api_key=None, **limits):
    from engine.serve.access_log import AccessLog
    from engine.serve.app import build_app
    from engine.serve.limits import ServeLimits
    from engine.serve.model_pool import ModelPool

    pool = ModelPool([("fake", "fake-spec")])
    pool.models["fake"].backend, pool.models["fake"].label = backend, backend.label
    log = AccessLog(stream=open(__import__("os").devnull, "w"))
    return build_app(pool, ServeLimits(**{"max_body_bytes": 4096, "max_tokens": 64, "max_messages": 4, **limits}),
                     api_key=api_key, log=log)


def chat(**fields):
    return {"model": "fake", "messages": [{"role": "user", "content": "hi"}], **fields}


@pytest.fixture(scope="module")
def url():
    with serving(make_app(FakeBackend())) as base:
        yield base


BAD_REQUESTS = [  # (name, body bytes or JSON object, status, error code)
    ("not json", b"{bad", 400, "invalid_json"),
    ("not an object", b"[1, 2]", 400, "invalid_body"),
    ("no model", {"messages": [{"role": "user", "content": "hi"}]}, 400, "invalid_field"),
    ("no messages field", {"model": "fake"}, 400, "invalid_field"),
    ("empty messages", chat(messages=[]), 400, "empty_messages"),
    ("too many messages", chat(messages=[{"role": "user", "content": "x"}] * 5), 400, "too_many_messages"),
    ("temperature is a string", chat(temperature="hot"), 400, "invalid_field"),
    ("max_tokens is a float", chat(max_tokens=1.5), 400, "invalid_field"),
    ("max_tokens over the cap", chat(max_tokens=10_000), 400, "max_tokens_too_large"),
    ("messages is a string", chat(messages="hi"), 400, "invalid_field"),
    ("message without role", chat(messages=[{"content": "hi"}]), 400, "invalid_field"),
    ("tool role", chat(messages=[{"role": "tool", "content": "x"}]), 400, "invalid_role"),
    ("image part", chat(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]),
     400, "unsupported_content"),
    ("n=2", chat(n=2), 400, "unsupported_n"),
    ("five stop strings", chat(stop=["a", "b", "c", "d", "e"]), 400, "too_many_stops"),
    ("unknown model", chat(model="nope"), 404, "model_not_found"),
    ("a path as the model", chat(model="/etc/passwd"), 404, "model_not_found"),
    ("body over the limit", chat(messages=[{"role": "user", "content": "x" * 5000}]), 413, "body_too_large"),
]


@pytest.mark.parametrize("name,body,status,code", BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS])
def test_bad_request_gets_status_and_openai_error_body(url, name, body, status, code):
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    r = httpx.post(f"{url}/v1/chat/completions", content=content, headers={"Content-Type": "application/json"})
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code and err["message"] and err["type"]
    assert "Traceback" not in r.text


def test_other_bad_requests_and_the_server_still_answers(url):
    r = httpx.post(f"{url}/v1/completions", json={"model": "fake", "prompt": ""})
    assert r.status_code == 400 and r.json()["error"]["code"] == "empty_prompt"
    r = httpx.get(f"{url}/v1/chat/completions")
    assert r.status_code == 405 and r.json()["error"]["code"] == "unknown_route"
    r = httpx.get(f"{url}/v2/whatever")
    assert r.status_code == 404 and "GET /v1/models" in r.json()["error"]["message"]

    def chunked():  # no Content-Length: the cap counts the bytes as they arrive
        for _ in range(10):
            yield b"x" * 1000

    r = httpx.post(f"{url}/v1/chat/completions", content=chunked())
    assert r.status_code == 413 and r.json()["error"]["code"] == "body_too_large"
    nulls = dict(n=None, stream=None, temperature=None, top_p=None, max_tokens=None, stop=None, seed=None)
    assert httpx.post(f"{url}/v1/chat/completions", json=chat(**nulls)).status_code == 200  # clients that send nulls
    r = httpx.post(f"{url}/v1/chat/completions", json=chat(max_tokens=5, stop="d"))
    assert r.status_code == 200
    body = r.json()
    assert body["choices"][0]["message"]["content"] == "abc" and body["choices"][0]["finish_reason"] == "stop"
    r = httpx.post(f"{url}/v1/completions", json={"model": "fake", "prompt": "hello", "max_tokens": 3})
    assert r.json()["choices"][0]["text"] == "abc" and r.json()["choices"][0]["finish_reason"] == "length"
    assert r.json()["usage"] == {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}
    assert httpx.get(f"{url}/health").json()["models"]["fake"]["loaded"] is True


def test_stop_string_split_across_tokens_is_cut_and_never_sent(url):
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=chat(stream=True, stop=["efg"])) as r:
        text = "".join(json.loads(line[6:])["choices"][0]["delta"].get("content", "")
                       for line in r.iter_lines() if line.startswith("data: {"))
    assert text == "abcd"


def test_api_key_is_required_on_every_request():
    openai = pytest.importorskip("openai")
    with serving(make_app(FakeBackend(), api_key=KEY)) as base:
        assert httpx.get(f"{base}/v1/models").status_code == 401
        assert httpx.get(f"{base}/health", headers={"Authorization": "Bearer wrong-key-12345"}).status_code == 401
        r = httpx.post(f"{base}/v1/chat/completions", json=chat(), headers={"Authorization": f"Bearer {KEY}x"})
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        assert httpx.get(f"{base}/v1/models", headers={"x-api-key": KEY}).status_code == 200
        client = openai.OpenAI(base_url=f"{base}/v1", api_key=KEY, max_retries=0)
        assert client.chat.completions.create(model="fake", messages=[{"role": "user", "content": "hi"}],
                                              max_tokens=2).choices[0].message.content == "ab"
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=f"{base}/v1", api_key="nope-nope-nope", max_retries=0).models.list()


def test_binding_beyond_loopback_needs_a_key(tmp_path):
    from engine.serve.auth import is_loopback, require_key_off_loopback, resolve_api_key

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and not is_loopback("0.0.0.0")
    with pytest.raises(EdgetuneError, match="--api-key"):
        require_key_off_loopback("0.0.0.0", None)
    require_key_off_loopback("0.0.0.0", KEY)
    (tmp_path / "key").write_text(KEY + "\n")
    assert resolve_api_key(None, str(tmp_path / "key")) == KEY
    with pytest.raises(EdgetuneError, match="at least 8"):
        resolve_api_key("short", None)
    out = subprocess.run([sys.executable, "-m", "engine", "serve", "x.gguf", "--host", "0.0.0.0"], cwd=REPO,
                         capture_output=True, text=True, timeout=120, env={**__import__("os").environ, "EDGETUNE_API_KEY": ""})
    assert out.returncode == 2 and "needs a key" in out.stderr and "Traceback" not in out.stderr


def test_requests_beyond_the_queue_get_429_and_the_rest_are_answered():
    backend = FakeBackend(delay=0.02, length=26)  # ~0.5 s per answer
    with serving(make_app(backend, parallel=1, queue=1)) as base:
        results: list = [None] * 4

        def ask(i):
            results[i] = httpx.post(f"{base}/v1/chat/completions", json=chat(max_tokens=26), timeout=30)

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
            time.sleep(0.1)  # in order: one runs, one waits, the others find the queue full
        for t in threads:
            t.join(30)
        codes = sorted(r.status_code for r in results)
        assert codes == [200, 200, 429, 429]
        busy = next(r for r in results if r.status_code == 429).json()["error"]
        assert busy["code"] == "server_busy" and busy["type"] == "rate_limit_error"
        assert httpx.post(f"{base}/v1/chat/completions", json=chat(max_tokens=2)).status_code == 200


@pytest.mark.parametrize("stream", [True, False])
def test_a_client_that_disconnects_stops_its_generation(stream):
    backend = FakeBackend(delay=0.02, length=10_000)
    with serving(make_app(backend, max_tokens=10_000)) as base:
        host, port = base.rsplit("/", 1)[-1].split(":")
        body = json.dumps(chat(max_tokens=10_000, stream=stream)).encode()
        with socket.create_connection((host, int(port))) as s:
            s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            time.sleep(0.5)  # some tokens are generated ...
        time.sleep(1.0)  # ... then the client is gone: generation must stop within a token or two
        stopped_at = backend.generated
        time.sleep(0.5)
        assert 0 < stopped_at < 500 and backend.generated == stopped_at  # of 10,000 asked
        r = httpx.post(f"{base}/v1/chat/completions", json=chat(max_tokens=3), timeout=10)
        assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "abc"


def test_missing_serve_extra_names_the_pip_command(monkeypatch):
    import importlib.util

    from engine.serve import require_serve_deps

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "uvicorn" else real(name, *a))
    with pytest.raises(EdgetuneError, match=r"needs uvicorn.*pip install 'edgetune\[serve\]'"):
        require_serve_deps()


def test_engine_help_imports_neither_torch_nor_fastapi():
    code = ("import sys; from engine.cli.main import build_parser; build_parser(); "
            "bad = [m for m in ('torch', 'fastapi', 'uvicorn', 'transformers') if m in sys.modules]; assert not bad, bad")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr


def test_model_names_come_from_files_and_never_open_paths(tmp_path):
    from engine.serve.model_pool import parse_model_args

    assert parse_model_args(["runs/q/exports/model-q8_0.gguf", "tuned=runs/q", "runs/x/exports/model-q8_0.gguf"]) == [
        ("model-q8_0", "runs/q/exports/model-q8_0.gguf"), ("tuned", "runs/q"),
        ("model-q8_0-2", "runs/x/exports/model-q8_0.gguf")]


def test_served_process_stops_when_its_parent_closes_stdin_and_names_unloadable_models():
    """The app's lifeline: the child ends when the pipe closes. A model that cannot load is a 503
    naming the problem, and the server keeps answering."""
    proc = ServeProcess("ghost=no-such-model-anywhere", "--exit-with-stdin", stdin=subprocess.PIPE)
    try:
        r = httpx.post(f"{proc.url}/chat/completions", json=chat(model="ghost"), timeout=120)
        assert r.status_code == 503 and r.json()["error"]["code"] == "model_load_failed"
        assert "no-such-model-anywhere" in r.json()["error"]["message"] and "Traceback" not in r.text
        assert httpx.get(f"{proc.url}/models").json()["data"][0]["id"] == "ghost"
        proc.proc.stdin.close()
        assert proc.proc.wait(30) == 0
        end = time.monotonic() + 5  # the reader thread may still hold the last line
        while proc.events[-1]["type"] != "serve_stopped" and time.monotonic() < end:
            time.sleep(0.05)
        assert proc.events[-1]["type"] == "serve_stopped"
    finally:
        proc.stop()


def test_a_chat_template_that_refuses_the_messages_is_a_400():
    """Templates such as Mistral's raise on roles that do not alternate: the client hears why."""

    class StrictTemplate(FakeBackend):
        def prompt_ids(self, messages):
            from engine.chat.template import render_prompt

            template = ("{% for m in messages %}{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}"
                        "{{ raise_exception('Conversation roles must alternate user/assistant') }}{% endif %}"
                        "{{ m['content'] }}{% endfor %}")
            return self.encode(render_prompt(template, messages))

    with serving(make_app(StrictTemplate())) as base:
        two_users = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
        r = httpx.post(f"{base}/v1/chat/completions", json=chat(messages=two_users))
        assert r.status_code == 400 and r.json()["error"]["code"] == "template_error"
        assert "must alternate" in r.json()["error"]["message"]
        assert httpx.post(f"{base}/v1/chat/completions", json=chat(max_tokens=1)).status_code == 200
