"""One request's generation: the backend's blocking token stream, run in a worker thread and
read by the event loop as text pieces, with stop strings, cancellation and usage counts.

The backends stop at the model's end-of-turn tokens themselves; stop *strings* are applied
here on the text, holding back the few characters that could still become one. Setting
`cancel` (a client that disconnected) ends the backend's stream at its next token.
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import AsyncIterator, Optional

from engine.chat.sampling import SamplingParams
from engine.errors import EdgetuneError
from engine.serve.api_errors import ApiError
from engine.serve.model_pool import ServedModel, context_length


class StopText:
    """Cut streamed text at the first of `stops`; `push` returns what is safe to send so far."""

    def __init__(self, stops: list[str]):
        self.stops, self.pending, self.hit = stops, "", False
        self.hold = max((len(s) for s in stops), default=1) - 1

    def push(self, piece: str) -> str:
        """Add a piece; return the text that can no longer become the start of a stop string."""
        self.pending += piece
        if not self.stops:
            out, self.pending = self.pending, ""
            return out
        cut = min((i for i in (self.pending.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self.hit = True
            out, self.pending = self.pending[:cut], ""
            return out
        keep = len(self.pending) - self.hold
        out, self.pending = self.pending[:max(keep, 0)], self.pending[max(keep, 0):]
        return out

    def flush(self) -> str:
        """The held-back tail, once the answer has ended without a stop string."""
        out, self.pending = self.pending, ""
        return out


@dataclass
class Usage:
    """What the access log, the usage field and the events report."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"
    seconds: float = 0.0
    text: list[str] = field(default_factory=list)

    def as_openai(self) -> dict:
        """The `usage` object of OpenAI responses."""
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.prompt_tokens + self.completion_tokens}


def fit_context(model: ServedModel, ids: list[int], params: SamplingParams) -> None:
    """A prompt longer than the model's context is a 400; the answer is clipped to what is left."""
    ctx = context_length(model.backend)
    if ctx and len(ids) >= ctx:
        raise ApiError(400, f"The prompt has {len(ids)} tokens but {model.name!r} attends to at most {ctx}. "
                            f"Shorten the conversation.", "context_length_exceeded", "messages")
    if ctx:
        params.max_tokens = min(params.max_tokens, ctx - len(ids))


def _run(model: ServedModel, ids: list[int], params: SamplingParams, stops: list[str],
         cancel: threading.Event, emit, usage: Usage, pieces: bool, inputs: Optional[dict] = None) -> None:
    """Worker thread: generate until end-of-turn, a stop, max_tokens or cancel; the text gathers in
    `usage.text`, and with `pieces` each piece also goes to `emit("text", piece)` as it comes.
    `inputs` are the tensors a vision backend's prompt_inputs gave with the ids (the pixels)."""
    try:
        with model.busy:
            if cancel.is_set():  # the client left while this request waited for the model
                return
            start = time.perf_counter()
            stopper = StopText(stops)
            stream = model.backend.stream(ids, params) if inputs is None else model.backend.stream(ids, params, inputs)
            try:
                for piece in stream:
                    out = stopper.push(piece)
                    if out:
                        usage.text.append(out)
                        if pieces:
                            emit("text", out)
                    if stopper.hit or cancel.is_set():
                        break
            finally:
                stream.close()  # the backend's own cleanup (counts, generator) runs now
            tail = "" if stopper.hit else stopper.flush()
            if tail:
                usage.text.append(tail)
                if pieces:
                    emit("text", tail)
            usage.completion_tokens = int(getattr(model.backend, "last_count", 0) or 0)
            usage.seconds = time.perf_counter() - start
            hit_length = not stopper.hit and usage.completion_tokens >= params.max_tokens
            usage.finish_reason = "length" if hit_length else "stop"
        emit("done", usage)
    except ApiError as e:
        emit("error", e)
    except EdgetuneError as e:  # e.g. a prompt past an ONNX export's window
        emit("error", ApiError(400, str(e), "generation_failed"))
    except Exception as e:  # a bug or a backend crash: logged by the caller, never sent as a traceback
        emit("error", e)


async def generate(model: ServedModel, ids: list[int], params: SamplingParams, stops: list[str],
                   executor: Executor, pieces: bool = True, inputs: Optional[dict] = None
                   ) -> AsyncIterator[tuple[str, object]]:
    """Yield ("text", str) pieces (only with `pieces`), then ("done", Usage) or ("error", exception).

    Without `pieces` (a non-streamed answer) the event loop is not woken per token: each wake-up
    makes the generating thread wait for the GIL, and on a busy CPU that cost a measured 2-4x in
    tokens/s. The text is in the final Usage either way.

    Leaving the loop early (the client disconnected, the task was cancelled) sets the cancel
    flag, so the worker thread ends the backend's stream at its next token."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    cancel = threading.Event()
    usage = Usage(prompt_tokens=len(ids))

    def emit(kind: str, value) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, (kind, value))
        except RuntimeError:  # the loop has shut down (server stopping): nobody is listening
            pass

    loop.run_in_executor(executor, _run, model, ids, params, stops, cancel, emit, usage, pieces, inputs)
    try:
        while True:
            kind, value = await queue.get()
            yield kind, value
            if kind != "text":
                return
    finally:
        cancel.set()
