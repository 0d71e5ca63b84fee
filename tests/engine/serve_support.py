"""Start `engine serve` for tests: a real child process or uvicorn in a thread, loopback only, always stopped."""

from __future__ import annotations

import json
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

from tests.conftest import REPO


class ServeProcess:
    """`engine serve ARGS --port 0 --events -` as a child; `url` once it listens, `events` as they come."""

    def __init__(self, *args: str, env: dict | None = None, timeout: float = 180, stdin=subprocess.DEVNULL):
        self.proc = subprocess.Popen([sys.executable, "-m", "engine", "serve", *args, "--host", "127.0.0.1",
                                      "--port", "0", "--events", "-"], cwd=REPO, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})},
                                     stdin=stdin)
        self.events: list[dict] = []
        self.stderr: list[str] = []
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, args=(self.proc.stdout, lines), daemon=True).start()
        threading.Thread(target=lambda: self.stderr.extend(self.proc.stderr), daemon=True).start()
        end = time.monotonic() + timeout
        self.url = None
        while self.url is None:
            try:
                event = lines.get(timeout=max(0.1, end - time.monotonic()))
            except queue.Empty:
                self.stop()
                raise RuntimeError(f"engine serve did not start in {timeout:.0f} s: {''.join(self.stderr)[-2000:]}")
            if event is None:
                self.stop()
                raise RuntimeError(f"engine serve exited ({self.proc.returncode}): {''.join(self.stderr)[-2000:]}")
            if event.get("type") == "serve_started":
                self.url = event["url"]

    def _pump(self, stream, lines) -> None:
        for line in stream:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            self.events.append(event)
            lines.put(event)
        self.proc.wait()
        lines.put(None)

    def stop(self) -> int:
        """SIGTERM, then SIGKILL after 15 s; the exit status."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(15)
        return self.proc.returncode


@contextmanager
def serving(app):
    """Run an ASGI app on a free loopback port in a thread; yields the base URL (no /v1)."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        end = time.monotonic() + 30
        while not server.started:
            if time.monotonic() > end or not thread.is_alive():
                raise RuntimeError("the in-process server did not start")
            time.sleep(0.02)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(15)
        sock.close()
