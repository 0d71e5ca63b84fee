"""`engine serve` with images: OpenAI `image_url` content parts for vision-language models.

A fake vision backend (it answers with the sizes of the images it was given) checks the part
formats, the limits and the error bodies fast, in-process; the real server as a child process on
a tiny trained VLM (vision_fixtures' `vlm_run`) must answer an image question as `engine chat
--image` does, streamed and not."""

from __future__ import annotations

import base64
import io
import json
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from engine.serve.image_parts import image_data_uri  # noqa: E402
from tests.engine.serve_support import ServeProcess, serving  # noqa: E402
from tests.engine.test_serve_errors import FakeBackend, make_app  # noqa: E402
from tests.engine.vision_fixtures import *  # noqa: E402,F401,F403  (session fixtures)


class FakeVisionBackend(FakeBackend):
    """Answers with the 'WxH' of each image it was given ('none' without), read while tokenising."""

    label = "fake:vlm"
    accepts_images = True

    def __init__(self):
        super().__init__()
        self.seen_files: list[str] = []

    def prompt_inputs(self, messages):
        from PIL import Image

        sizes = []
        for m in messages:
            for path in m.get("images", ()):
                self.seen_files.append(path)
                with Image.open(path) as im:
                    sizes.append(im.size)
        return self.prompt_ids(messages), {"sizes": sizes}

    def stream(self, ids, params, inputs=None):
        text = ";".join(f"{w}x{h}" for w, h in (inputs or {}).get("sizes", [])) or "none"
        self.last_count = 0
        for ch in text[:params.max_tokens]:
            self.last_count += 1
            yield ch


def png_bytes(width: int, height: int) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


def data_uri(width: int, height: int) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(width, height)).decode()


def image_part(url: str) -> dict:
    return {"type": "image_url", "image_url": {"url": url}}


def ask(*parts: dict, **fields) -> dict:
    return {"model": "fake", "max_tokens": 32,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "What is it?"}, *parts]}], **fields}


@pytest.fixture(scope="module")
def vision():
    backend = FakeVisionBackend()
    with serving(make_app(backend, max_body_bytes=64 * 1024, max_images=3)) as base:
        yield base, backend


def test_data_uri_and_file_parts_reach_the_backend_as_files_removed_afterwards(vision, tmp_path):
    url, backend = vision
    local = tmp_path / "small.png"
    local.write_bytes(png_bytes(7, 3))
    body = ask(image_part(data_uri(20, 10)), image_part(local.as_uri()), {"type": "image_url", "image_url": str(local)})
    r = httpx.post(f"{url}/v1/chat/completions", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "20x10;7x3;7x3"
    decoded = backend.seen_files[-3]
    assert decoded != str(local) and not Path(decoded).exists()  # the request's temporary copy is gone
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=ask(image_part(image_data_uri(str(local))),
                                                                      stream=True)) as s:
        lines = [json.loads(line[6:]) for line in s.iter_lines() if line.startswith("data: {")]
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in lines if c["choices"]) == "7x3"


BAD_IMAGES = [  # (name, request body, error code, words the message must hold)
    ("bad base64", ask(image_part("data:image/png;base64,@@not-base64@@")), "invalid_image", "invalid base64"),
    ("not an image", ask(image_part("data:image/png;base64," + base64.b64encode(b"hello").decode())),
     "invalid_image", "messages[0].content[1]' cannot be read"),
    ("data without base64", ask(image_part("data:image/png,rawbytes")), "invalid_image_url", "without base64"),
    ("web URL", ask(image_part("https://example.com/cat.png")), "remote_image_refused", "fetches nothing"),
    ("ftp URL", ask(image_part("ftp://example.com/cat.png")), "invalid_image_url", "ftp: URL"),
    ("relative path", ask(image_part("cat.png")), "invalid_image_url", "absolute path"),
    ("missing file", ask(image_part("file:///nowhere/cat.png")), "invalid_image", "not found"),
    ("file on another host", ask(image_part("file://server/share/cat.png")), "invalid_image_url", "another machine"),
    ("part without URL", ask({"type": "image_url"}), "invalid_image_url", "without a URL"),
    ("unknown part type", ask({"type": "input_audio", "input_audio": {}}), "unsupported_content", "'input_audio'"),
    ("too many images", ask(*[image_part(data_uri(2, 2))] * 4), "too_many_images", "--max-images"),
    ("image in an assistant turn", {"model": "fake", "messages": [
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": [image_part(data_uri(2, 2))]},
        {"role": "user", "content": "and?"}]}, "unsupported_content", "images go in user messages"),
]


@pytest.mark.parametrize("name,body,code,words", BAD_IMAGES, ids=[b[0] for b in BAD_IMAGES])
def test_bad_image_parts_are_400s_naming_the_part(vision, name, body, code, words):
    url, _ = vision
    r = httpx.post(f"{url}/v1/chat/completions", json=body)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == code and words in err["message"], err
    assert "Traceback" not in r.text


def test_a_server_off_loopback_reads_no_local_files_and_text_models_refuse_images(tmp_path):
    local = tmp_path / "small.png"
    local.write_bytes(png_bytes(7, 3))
    with serving(make_app(FakeVisionBackend(), local_files=False)) as url:
        r = httpx.post(f"{url}/v1/chat/completions", json=ask(image_part(local.as_uri())))
        assert r.status_code == 400 and r.json()["error"]["code"] == "local_file_refused"
        r = httpx.post(f"{url}/v1/chat/completions", json=ask(image_part(data_uri(5, 4))))
        assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "5x4"
        assert httpx.get(f"{url}/v1/models").json()["data"][0]["input_modalities"] == ["text", "image"]
    with serving(make_app(FakeBackend())) as url:
        r = httpx.post(f"{url}/v1/chat/completions", json=ask(image_part(data_uri(5, 4))))
        assert r.status_code == 400 and "reads text only" in r.json()["error"]["message"]
        assert r.json()["error"]["param"] == "messages[0].content[1]"
        assert httpx.get(f"{url}/v1/models").json()["data"][0]["input_modalities"] == ["text"]


QUESTION = "What colour is the shape?"
GREEDY = dict(temperature=0, max_tokens=6)


@pytest.mark.slow
def test_served_tiny_vlm_answers_an_image_like_engine_chat(vlm_run, shapes_dir, tiny_model_dir):
    """The real `engine serve` child on a trained tiny VLM (adapter on its base): an image sent as a data:
    URI gets `engine chat --image`'s greedy answer, streamed and not; a text model beside it refuses images
    (decided without loading it)."""
    openai = pytest.importorskip("openai")
    from engine.chat import ChatSession

    run, _ = vlm_run
    image = shapes_dir / "images" / "held_out-0.png"
    session = ChatSession(str(run), repeat_penalty=1.0, **GREEDY)
    session.attach_image(str(image))
    expected = session.ask(QUESTION)
    server = ServeProcess(f"vlm={run}", f"text={tiny_model_dir}")
    try:
        client = openai.OpenAI(base_url=server.url, api_key="unused", max_retries=0, timeout=120)
        models = {m.id: m.model_extra["input_modalities"] for m in client.models.list().data}
        assert models == {"vlm": ["text", "image"], "text": ["text"]}
        content = [{"type": "text", "text": QUESTION}, image_part(image_data_uri(str(image)))]
        messages = [{"role": "user", "content": content}]
        r = client.chat.completions.create(model="vlm", messages=messages, extra_body={"repeat_penalty": 1.0}, **GREEDY)
        assert r.choices[0].message.content == expected
        assert r.usage.prompt_tokens == session.last_stats["prompt_tokens"]  # the image's tokens are counted
        stream = client.chat.completions.create(model="vlm", messages=messages, stream=True,
                                                extra_body={"repeat_penalty": 1.0}, **GREEDY)
        assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == expected
        with pytest.raises(openai.BadRequestError, match="reads text only"):
            client.chat.completions.create(model="text", messages=messages, **GREEDY)
        loaded = [e for e in server.events if e["type"] == "model_loaded"]
        assert [(e["model"], e["accepts_images"]) for e in loaded] == [("vlm", True)]  # the text model never loaded
    finally:
        assert server.stop() == 0, "".join(server.stderr)[-2000:]


def test_concurrent_requests_with_the_same_text_keep_their_own_images():
    """Two prompts that differ only in their image tokenise alike: the pixels travel with each request's
    ids (prompt_inputs -> stream(ids, params, inputs)), not in the backend, so answers never swap."""
    import threading

    backend = FakeVisionBackend()
    backend.delay = 0.01
    original = backend.stream

    def slow_stream(ids, params, inputs=None):
        for ch in original(ids, params, inputs):
            time.sleep(backend.delay)
            yield ch

    backend.stream = slow_stream
    answers = {}
    with serving(make_app(backend, max_body_bytes=64 * 1024, parallel=2)) as url:
        def post(size):
            r = httpx.post(f"{url}/v1/chat/completions", json=ask(image_part(data_uri(*size))), timeout=30)
            answers[size] = r.json()["choices"][0]["message"]["content"]

        threads = [threading.Thread(target=post, args=(size,)) for size in ((20, 10), (7, 3), (9, 9))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert answers == {(20, 10): "20x10", (7, 3): "7x3", (9, 9): "9x9"}
