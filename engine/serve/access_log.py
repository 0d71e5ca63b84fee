"""One line per request (and, with --events, one `serve_request` event), written when the
response has been sent in full, so a streamed answer's latency and tokens/s are its own.

    2026-12-02 17:50:01 127.0.0.1 POST /v1/chat/completions 200 model=tiny in=12 out=8 0.52s 15.4tok/s
"""

from __future__ import annotations

import sys
import threading
import time
from typing import IO, Optional

from engine.events import EventSink


class LockedSink(EventSink):
    """An EventSink safe to emit from the event loop and the loading threads at once (whole lines)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._lock = threading.Lock()

    def emit(self, type: str, **fields) -> dict:
        with self._lock:
            return super().emit(type, **fields)


class AccessLog:
    """Formats request records for a human stream and the event sink."""

    def __init__(self, stream: Optional[IO[str]] = None, sink: Optional[EventSink] = None):
        self.stream = stream if stream is not None else sys.stderr
        self.sink = sink

    def record(self, client: str, method: str, path: str, status: int, seconds: float, info: dict) -> None:
        """Write one request's line (and event)."""
        model = info.get("model") or "-"
        p_in, p_out = int(info.get("prompt_tokens") or 0), int(info.get("completion_tokens") or 0)
        gen_s = float(info.get("generation_seconds") or 0.0)
        rate = p_out / gen_s if gen_s > 0 else 0.0
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        line = (f"{stamp} {client} {method} {path} {status} model={model} in={p_in} out={p_out} "
                f"{seconds:.2f}s {rate:.1f}tok/s")
        try:
            print(line, file=self.stream, flush=True)
        except (OSError, ValueError):  # a closed stderr must not take a request down
            pass
        if self.sink is not None:
            self.sink.emit("serve_request", model=info.get("model"), path=path, status=status,
                           prompt_tokens=p_in, completion_tokens=p_out, seconds=round(seconds, 4),
                           tokens_per_s=round(rate, 2))

    def middleware(self, app):
        """Pure ASGI middleware (no buffering of streams): times each HTTP request and logs it at its end."""

        async def logged(scope, receive, send):
            if scope["type"] != "http":
                return await app(scope, receive, send)
            start, status = time.perf_counter(), [0]
            info = scope.setdefault("state", {}).setdefault("usage", {})

            async def sending(message):
                if message["type"] == "http.response.start":
                    status[0] = message["status"]
                await send(message)

            try:
                await app(scope, receive, sending)
            finally:
                client = scope.get("client") or ("-", 0)
                self.record(client[0], scope.get("method", "-"), scope.get("path", "-"), status[0] or 499,
                            time.perf_counter() - start, info)

        return logged
