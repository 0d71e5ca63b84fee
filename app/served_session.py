"""A chat session whose model lives in an `engine serve` child process (Qt-free).

    s = ServedSession("runs/quickstart/exports/model-q8_0.gguf", system=None, sampling={"temperature": 0})
    for piece in s.send("Who makes the Quillon Q7?"):
        print(piece, end="")
    s.close()   # the child exits and its memory goes back to the system

The app's chat columns used to load models inside the GUI process, where closing a chat could
not give the memory back. Now each loaded column owns one server child on a free loopback
port with a random API key: the GUI keeps only the conversation, streams answers over the
OpenAI API, and Stop closes the connection (the server stops generating at the next token).
The same server is what "Serve this model" shows: any OpenAI client may use it meanwhile.
A model that reads images says so when it loads (`accepts_images`); `attach_image(path)` then
sends the file with the next message as an OpenAI image_url part (a base64 data: URI), and the
history keeps it, since the server keeps no conversation.
"""

from __future__ import annotations

import json
import os
import queue
import secrets
import subprocess
import threading
import time
import urllib.error
import urllib.request
from typing import Callable, Iterator, Optional

from engine.errors import EdgetuneError

START_TIMEOUT_S = 600  # a large model on a slow disk takes minutes to load
SAMPLING_FIELDS = ("temperature", "top_p", "top_k", "repeat_penalty", "max_tokens", "seed")
IMAGE_BODY_KB = 64 * 1024  # a few photos of a few MB each, resent with every turn of the conversation
MAX_IMAGES = 32  # images in one conversation (the server counts every turn's)


def serve_args(spec: str, name: str, max_tokens: int) -> list[str]:
    """`engine serve` arguments for one model on a free loopback port, loaded before it reports ready;
    it exits when its stdin (a pipe from the app) closes, so it never outlives the app."""
    return ["serve", f"{name}={spec}", "--host", "127.0.0.1", "--port", "0", "--events", "-", "--preload",
            "--quiet", "--exit-with-stdin", "--max-tokens-limit", str(max(2048, max_tokens)),
            # every request carries the conversation's images again, base64 inside the body
            "--max-body-kb", str(IMAGE_BODY_KB), "--max-images", str(MAX_IMAGES)]


class ServedSession:
    """ChatSession's interface (send/reset/label/last_stats) over a child `engine serve`."""

    def __init__(self, spec: str, system: Optional[str] = None, sampling: Optional[dict] = None,
                 cancelled: Callable[[], bool] = lambda: False):
        from app.engine_command import engine_invocation
        from engine.serve.model_pool import default_name

        self.spec, self.system = spec, system or None
        self.sampling = {k: v for k, v in (sampling or {}).items() if k in SAMPLING_FIELDS}
        self.history: list[dict] = []
        self.last_stats: dict = {}
        self.accepts_images = False  # the server says so when the model has loaded
        self.pending_images: list[str] = []  # data: URIs that go with the next message
        self.model_name = default_name(spec) or "model"
        self.api_key = secrets.token_urlsafe(24)
        self.url = ""
        self.label = spec
        program, args = engine_invocation(serve_args(spec, self.model_name, int(self.sampling.get("max_tokens") or 0)))
        env = {**os.environ, "EDGETUNE_API_KEY": self.api_key}  # not on the command line, where `ps` shows it
        self.proc = subprocess.Popen([program, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=env, stdin=subprocess.PIPE)  # the lifeline: never written, closed by close()
        self._stderr: list[str] = []
        events: queue.Queue = queue.Queue()
        threading.Thread(target=self._read_events, args=(events,), daemon=True).start()
        threading.Thread(target=lambda: self._stderr.extend(self.proc.stderr), daemon=True).start()
        try:
            self._wait_started(events, cancelled)
        except BaseException:
            self.close()
            raise

    # lifecycle --------------------------------------------------------------------------
    def _read_events(self, events: queue.Queue) -> None:
        for line in self.proc.stdout:
            try:
                events.put(json.loads(line))
            except json.JSONDecodeError:
                continue
        events.put(None)

    def _wait_started(self, events: queue.Queue, cancelled: Callable[[], bool]) -> None:
        end = time.monotonic() + START_TIMEOUT_S
        while not self.url:
            if cancelled():  # the column is closing while the model loads
                raise EdgetuneError(f"Loading '{self.spec}' was cancelled.")
            try:
                event = events.get(timeout=0.2)
            except queue.Empty:
                if time.monotonic() > end:
                    raise EdgetuneError(f"The model server for '{self.spec}' did not start in {START_TIMEOUT_S} s.") from None
                continue
            if event is None:
                self.proc.wait(10)
                raise EdgetuneError(self._child_error())
            if event.get("type") == "model_loaded":
                self.label = event.get("label") or self.label
                self.accepts_images = bool(event.get("accepts_images"))
            elif event.get("type") == "serve_started":
                self.url = event["url"]

    def _child_error(self) -> str:
        """The child's own `error: ...` line (it names the problem and the fix), else its last words."""
        time.sleep(0.2)  # let the stderr reader catch the last lines
        lines = [line.strip() for line in self._stderr if line.strip()]
        for line in reversed(lines):
            if line.startswith("error: "):
                return line[len("error: "):]
        tail = " | ".join(lines[-3:]) or f"exit status {self.proc.returncode}"
        return f"The model server for '{self.spec}' stopped: {tail}"

    def close(self) -> None:
        """Stop the child (SIGTERM, then kill): its memory is given back now."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    @property
    def running(self) -> bool:
        return self.proc.poll() is None

    # conversation -----------------------------------------------------------------------
    def attach_image(self, path: str) -> None:
        """Send the image at `path` with the next message, as an image_url part (vision-language models only)."""
        from engine.chat.session import check_attachment
        from engine.serve.image_parts import image_data_uri

        check_attachment(self.label, self.accepts_images, path)
        self.pending_images.append(image_data_uri(str(path)))

    def _user(self, text: str) -> dict:
        """The user turn: plain text, or text and image_url parts when images go with it."""
        if not self.pending_images:
            return {"role": "user", "content": text}
        images = [{"type": "image_url", "image_url": {"url": uri}} for uri in self.pending_images]
        return {"role": "user", "content": [*images, {"type": "text", "text": text}]}

    def messages(self, user_text: str) -> list[dict]:
        """System prompt, history and the new user turn, as the API takes them."""
        return self._context() + [self._user(user_text)]

    def _context(self) -> list[dict]:
        return ([{"role": "system", "content": self.system}] if self.system else []) + list(self.history)

    def send(self, text: str) -> Iterator[str]:
        """Stream the answer to `text`; the exchange joins the history when the answer is complete.
        Closing the generator early (Stop) closes the connection, which stops the generation."""
        user = self._user(text)
        self.pending_images = []  # they went with this message, answered or not: a refused image is not resent
        body = {"model": self.model_name, "messages": self._context() + [user], "stream": True,
                "stream_options": {"include_usage": True}, **self.sampling}
        if "max_tokens" in body:
            body["max_tokens"] = max(1, int(body["max_tokens"]))
        request = urllib.request.Request(f"{self.url}/chat/completions", data=json.dumps(body).encode("utf-8"),
                                         headers={"Content-Type": "application/json",
                                                  "Authorization": f"Bearer {self.api_key}"})
        start, pieces, usage = time.perf_counter(), [], {}
        try:
            response = urllib.request.urlopen(request, timeout=600)
        except urllib.error.HTTPError as e:
            raise EdgetuneError(_error_message(e.read())) from None
        except OSError as e:
            raise EdgetuneError(f"The model server for '{self.spec}' is not answering ({e}).") from None
        with response:
            for raw in response:
                line = raw.decode("utf-8").strip()
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                chunk = json.loads(line[6:])
                if "error" in chunk:
                    raise EdgetuneError(chunk["error"].get("message") or "The model server failed.")
                usage = chunk.get("usage") or usage
                for choice in chunk.get("choices", []):
                    piece = (choice.get("delta") or {}).get("content")
                    if piece:
                        pieces.append(piece)
                        yield piece
        seconds = time.perf_counter() - start
        tokens = int(usage.get("completion_tokens") or 0)
        self.last_stats = {"seconds": seconds, "tokens": tokens, "prompt_tokens": int(usage.get("prompt_tokens") or 0),
                           "tokens_per_s": tokens / seconds if seconds > 0 else 0.0}
        self.history += [user, {"role": "assistant", "content": "".join(pieces)}]

    def reset(self) -> None:
        """Forget the conversation (the server keeps none)."""
        self.history.clear()
        self.pending_images = []

    # "Serve this model" -------------------------------------------------------------------
    def snippets(self) -> dict:
        """The URL, key, and copyable curl and Python code that reach this model."""
        payload = json.dumps({"model": self.model_name, "messages": [{"role": "user", "content": "Hello!"}]})
        curl = (f"curl {self.url}/chat/completions \\\n  -H 'Authorization: Bearer {self.api_key}' \\\n"
                f"  -H 'Content-Type: application/json' \\\n  -d '{payload}'")
        python = ("from openai import OpenAI\n\n"
                  f"client = OpenAI(base_url=\"{self.url}\", api_key=\"{self.api_key}\")\n"
                  f"reply = client.chat.completions.create(model=\"{self.model_name}\",\n"
                  "    messages=[{\"role\": \"user\", \"content\": \"Hello!\"}])\n"
                  "print(reply.choices[0].message.content)")
        return {"url": self.url, "api_key": self.api_key, "model": self.model_name, "curl": curl, "python": python}


def _error_message(body: bytes) -> str:
    try:
        return json.loads(body)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return body.decode("utf-8", "replace")[:300] or "The model server refused the request."
