"""Response bodies in OpenAI's shapes: whole answers, SSE chunks, and the streamed body itself."""

from __future__ import annotations

import json
import sys
import time
import traceback
import uuid
from typing import Optional

from engine.serve.api_errors import ApiError
from engine.serve.generation import Usage, generate


def as_api_error(e: Exception) -> ApiError:
    """An ApiError as is; anything else is a bug: logged with its traceback, answered as a plain 500."""
    if isinstance(e, ApiError):
        return e
    traceback.print_exception(type(e), e, e.__traceback__, file=sys.stderr)
    return ApiError(500, "The model failed while generating; the server log has the details.", "generation_failed")


def record_usage(info: dict, usage: Usage) -> None:
    """Hand the token counts to the access log (it reads them from the request's state)."""
    info.update(prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens,
                generation_seconds=usage.seconds)


class Reply:
    """Response bodies of one request, as OpenAI's API shapes them."""

    def __init__(self, kind: str, model: str):
        self.kind, self.model, self.created = kind, model, int(time.time())
        self.id = ("chatcmpl-" if kind == "chat.completion" else "cmpl-") + uuid.uuid4().hex[:24]

    def _choice(self, text: Optional[str], finish: Optional[str], delta: bool) -> dict:
        if self.kind == "text_completion":
            return {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish}
        if delta:
            return {"index": 0, "delta": {} if text is None else {"content": text}, "logprobs": None, "finish_reason": finish}
        return {"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None, "finish_reason": finish}

    def whole(self, text: str, usage: Usage) -> dict:
        """The non-streamed response body."""
        return {"id": self.id, "object": self.kind, "created": self.created, "model": self.model,
                "choices": [self._choice(text, usage.finish_reason, delta=False)], "usage": usage.as_openai()}

    def chunk(self, text: Optional[str] = None, finish: Optional[str] = None, role: bool = False) -> str:
        """One streamed chunk: the opening role, a text delta, or the closing finish_reason."""
        obj = "chat.completion.chunk" if self.kind == "chat.completion" else "text_completion"
        choice = self._choice(text, finish, delta=True)
        if role:
            choice["delta"] = {"role": "assistant", "content": ""}
        return sse({"id": self.id, "object": obj, "created": self.created, "model": self.model, "choices": [choice]})

    def usage_chunk(self, usage: Usage) -> str:
        """The last chunk when the client asked for stream_options.include_usage: no choices, the counts."""
        obj = "chat.completion.chunk" if self.kind == "chat.completion" else "text_completion"
        return sse({"id": self.id, "object": obj, "created": self.created, "model": self.model, "choices": [],
                    "usage": usage.as_openai()})


def sse(obj: dict) -> str:
    """One server-sent event holding `obj` as JSON."""
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


class StreamEvents:
    """The SSE body of a streamed answer; its ticket is released however the stream ends."""

    def __init__(self, state, model, ids, params, stops, reply: Reply, usage_info: dict, include_usage: bool, ticket,
                 inputs=None):
        self.args = (state, model, ids, params, stops)
        self.inputs = inputs
        self.reply, self.usage_info, self.include_usage = reply, usage_info, include_usage
        self.ticket = ticket

    async def run(self):
        """The SSE body: wait for a slot, then role, text deltas, finish, usage, [DONE]."""
        state, model, ids, params, stops = self.args
        try:
            await self.ticket.wait_turn()
            if self.reply.kind == "chat.completion":
                yield self.reply.chunk(role=True)
            async for kind, value in generate(model, ids, params, stops, state.executor, inputs=self.inputs):
                if kind == "text":
                    yield self.reply.chunk(value)
                elif kind == "done":
                    record_usage(self.usage_info, value)
                    yield self.reply.chunk(finish=value.finish_reason)
                    if self.include_usage:
                        yield self.reply.usage_chunk(value)
                else:  # the status line has gone out: the error travels as an event, as OpenAI's does
                    yield sse(as_api_error(value).body())
            yield "data: [DONE]\n\n"
        finally:
            self.ticket.release()
