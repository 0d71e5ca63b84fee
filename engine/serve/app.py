"""The ASGI app: the OpenAI routes over a ModelPool, behind the key check and the access log.

    GET  /health                liveness, models and whether each is loaded
    GET  /v1/models             the names requests use
    POST /v1/chat/completions   messages (text, and image_url parts for VLMs) -> chat template -> answer
    POST /v1/completions        raw prompt text -> continuation (no template)

Handlers read the body themselves (size-capped) and validate it with `schemas`, so every bad
request gets an OpenAI-style error body rather than FastAPI's default 422 shape.
"""

from __future__ import annotations

import asyncio
import sys
import traceback
from contextlib import asynccontextmanager
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Optional

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine.chat.sampling import SamplingParams
from engine.errors import EdgetuneError
from engine.serve.access_log import AccessLog
from engine.serve.api_errors import ApiError, error_body
from engine.serve.auth import key_matches
from engine.serve.generation import Usage, fit_context, generate
from engine.serve.image_parts import RequestImages
from engine.serve.limits import AdmissionGate, ServeLimits
from engine.serve.model_pool import ModelPool
from engine.serve.responses import Reply, StreamEvents, as_api_error, record_usage
from engine.serve.schemas import ChatCompletionRequest, CompletionRequest, SamplingFields, parse_request


@dataclass
class ServeState:
    """Everything the routes share."""

    pool: ModelPool
    limits: ServeLimits
    api_key: Optional[str]
    defaults: SamplingParams
    log: AccessLog
    executor: ThreadPoolExecutor
    gate: Optional[AdmissionGate] = None  # made inside the event loop on startup


def build_app(pool: ModelPool, limits: ServeLimits, api_key: Optional[str] = None,
              defaults: Optional[SamplingParams] = None, log: Optional[AccessLog] = None, on_startup=None):
    """The ASGI app (FastAPI wrapped in the key check and the access log)."""
    state = ServeState(pool, limits.check(), api_key, defaults or SamplingParams(), log or AccessLog(),
                       ThreadPoolExecutor(max_workers=limits.parallel, thread_name_prefix="serve-gen"))

    @asynccontextmanager
    async def lifespan(_app):
        state.gate = AdmissionGate(limits.parallel, limits.queue)  # its semaphore belongs to this event loop
        if on_startup:
            on_startup()
        yield
        state.executor.shutdown(wait=False, cancel_futures=True)

    api = FastAPI(title="edgetune serve", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)

    @api.exception_handler(ApiError)
    async def _api_error(request: Request, e: ApiError):
        return JSONResponse(e.body(), status_code=e.status)

    @api.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, e: StarletteHTTPException):
        message = (f"No route {request.method} {request.url.path}; this server has GET /v1/models, "
                   f"POST /v1/chat/completions, POST /v1/completions and GET /health.") if e.status_code in (404, 405) \
            else str(e.detail)
        return JSONResponse(error_body(e.status_code, message, "unknown_route" if e.status_code in (404, 405) else None),
                            status_code=e.status_code)

    @api.exception_handler(Exception)
    async def _bug(request: Request, e: Exception):
        traceback.print_exception(type(e), e, e.__traceback__, file=sys.stderr)
        return JSONResponse(error_body(500, "Internal server error; the server log has the details.", "internal_error"),
                            status_code=500)

    @api.get("/health")
    async def health():
        return {"status": "ok", "models": {m.name: {"loaded": m.backend is not None, "label": m.label,
                                                    "images": state.pool.accepts_images(m)}
                                           for m in state.pool.models.values()}}

    @api.get("/v1/models")
    async def list_models():
        # input_modalities (as OpenRouter's model list has it): whether image_url parts may be sent
        return {"object": "list", "data": [{"id": m.name, "object": "model", "created": m.created, "owned_by": "edgetune",
                                            "input_modalities": modalities(state.pool, m)}
                                           for m in state.pool.models.values()]}

    @api.post("/v1/chat/completions")
    async def chat_completions(request: Request):
        req = parse_request(ChatCompletionRequest, await read_body(request, limits.max_body_bytes))
        if not req.messages:
            raise ApiError(400, "'messages' is empty; send at least one message.", "empty_messages", "messages")
        if len(req.messages) > limits.max_messages:
            raise ApiError(400, f"'messages' holds {len(req.messages)} messages; this server takes at most "
                                f"{limits.max_messages} (engine serve --max-messages).", "too_many_messages", "messages")
        messages = [m.as_chat(i) for i, m in enumerate(req.messages)]
        with RequestImages(limits.local_files) as images:
            if any("image_refs" in m for m in messages):
                check_images_wanted(state.pool, req.model, messages, limits)
                # decoding and opening the images is file and CPU work: off the event loop
                await asyncio.get_running_loop().run_in_executor(None, attach_images, images, messages)
            # the images become pixel tensors while tokenising, inside respond: the files may go after it
            return await respond(request, req, "chat.completion", lambda backend: chat_prompt(backend, messages))

    @api.post("/v1/completions")
    async def completions(request: Request):
        req = parse_request(CompletionRequest, await read_body(request, limits.max_body_bytes))
        text = req.prompt_text()
        if not text:
            raise ApiError(400, "'prompt' is empty.", "empty_prompt", "prompt")
        return await respond(request, req, "text_completion", lambda backend: (backend.encode(text), None))

    async def respond(request: Request, req: SamplingFields, kind: str, tokenize):
        params = sampling_params(req, state.defaults, limits)
        stops = req.stop_strings()
        model = state.pool.entry(req.model)
        usage_info = request.state.usage
        usage_info["model"] = model.name
        # a place in line before anything slow (loading, tokenising): beyond the queue, 429 at once
        ticket, streaming = state.gate.reserve(), False
        try:
            loop = asyncio.get_running_loop()
            if model.backend is None:  # first request for it: load (seconds) off the event loop
                await loop.run_in_executor(None, state.pool.load, model.name)
            ids, inputs = await loop.run_in_executor(None, render_and_tokenize, tokenize, model.backend)
            fit_context(model, ids, params)
            usage_info["prompt_tokens"] = len(ids)
            reply = Reply(kind, model.name)
            if req.stream:
                include_usage = bool(req.stream_options and req.stream_options.include_usage)
                body = StreamEvents(state, model, ids, params, stops, reply, usage_info, include_usage, ticket, inputs)
                ticket.release_with(body)  # the body releases it, or its garbage collection if it never runs
                streaming = True
                return StreamingResponse(body.run(), media_type="text/event-stream",
                                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
            usage = await until_disconnect(request, collect(state, model, ids, params, stops, ticket, usage_info, inputs))
            return JSONResponse(reply.whole("".join(usage.text), usage))
        finally:
            if not streaming:
                ticket.release()

    return log_and_auth(api, state)


def modalities(pool: ModelPool, model) -> list[str]:
    """What a model reads, for /v1/models."""
    return ["text", "image"] if pool.accepts_images(model) else ["text"]


def chat_prompt(backend, messages: list[dict]) -> tuple[list[int], Optional[dict]]:
    """(ids, inputs): a vision backend's pixel tensors travel with the ids, not in the backend, so two
    requests with other images (but the same text, so the same ids) cannot swap them."""
    if hasattr(backend, "prompt_inputs"):
        return backend.prompt_inputs(messages)
    return backend.prompt_ids(messages), None


def check_images_wanted(pool: ModelPool, name: str, messages: list[dict], limits: ServeLimits) -> None:
    """A 400 for images sent to a text-only model, or more images than the server takes."""
    model = pool.entry(name)
    first = next(m["image_refs"][0] for m in messages if "image_refs" in m)
    if not pool.accepts_images(model):
        hint = (" llama.cpp's multimodal path (a .gguf with its mmproj) is not served: serve the run folder or its "
                "merged/ folder to send images." if model.spec.lower().endswith(".gguf") else
                " Serve a vision-language model (a SmolVLM folder, or a run trained from one) to send images.")
        raise ApiError(400, f"{first.where} is an image, but model {name!r} reads text only.{hint}",
                       "unsupported_content", first.where)
    count = sum(len(m["image_refs"]) for m in messages if "image_refs" in m)
    if count > limits.max_images:
        raise ApiError(400, f"The messages hold {count} images; this server takes at most {limits.max_images} per "
                            f"request (engine serve --max-images).", "too_many_images", "messages")


def attach_images(images: RequestImages, messages: list[dict]) -> None:
    """Each message's image parts -> checked local files in its `images` list (what the backends read)."""
    for m in messages:
        refs = m.pop("image_refs", None)
        if refs:
            m["images"] = [images.resolve(ref) for ref in refs]


def render_and_tokenize(tokenize, backend) -> tuple[list[int], Optional[dict]]:
    """The prompt's token ids (and a vision backend's inputs); a chat template that refuses the messages
    (many raise on roles that do not alternate, or on a system turn) is the client's 400, in its own words."""
    try:
        return tokenize(backend)
    except EdgetuneError as e:
        raise ApiError(400, str(e), "invalid_prompt", "messages") from None
    except Exception as e:
        if type(e).__module__.split(".")[0] == "jinja2":
            raise ApiError(400, f"The model's chat template refused these messages: {e}", "template_error",
                           "messages") from None
        raise


def sampling_params(req: SamplingFields, defaults: SamplingParams, limits: ServeLimits) -> SamplingParams:
    """The server's defaults overridden by the request's fields; max_tokens capped with a clear 400."""
    if req.n not in (None, 1):
        raise ApiError(400, f"'n' is {req.n}; this server returns one choice per request (n=1).", "unsupported_n", "n")
    asked = req.max_completion_tokens or req.max_tokens
    if asked is not None and asked > limits.max_tokens:
        raise ApiError(400, f"'max_tokens' is {asked}, above this server's limit of {limits.max_tokens} "
                            f"(engine serve --max-tokens-limit).", "max_tokens_too_large", "max_tokens")
    params = SamplingParams(**defaults.as_dict())
    params.max_tokens = asked or limits.max_tokens
    for name in ("temperature", "top_p", "top_k", "repeat_penalty", "seed"):
        if getattr(req, name) is not None:
            setattr(params, name, getattr(req, name))
    return params


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refusing (413) more than `limit` bytes whether or not Content-Length says so."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"The request body is {int(declared)} bytes; this server takes at most {limit} "
                            f"(engine serve --max-body-kb; an inline image counts 4/3 of its file size).",
                       "body_too_large")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"The request body is over {limit} bytes, this server's limit "
                                f"(engine serve --max-body-kb; an inline image counts 4/3 of its file size).",
                           "body_too_large")
        chunks.append(chunk)
    return b"".join(chunks)


async def collect(state: ServeState, model, ids, params, stops, ticket, usage_info, inputs=None) -> Usage:
    """Run a whole generation after waiting for a slot; the Usage holds the text."""
    await ticket.wait_turn()
    async for kind, value in generate(model, ids, params, stops, state.executor, pieces=False, inputs=inputs):
        if kind == "done":
            record_usage(usage_info, value)
            return value
        if kind == "error":
            raise as_api_error(value)
    raise ApiError(500, "The generation ended without an answer.", "internal_error")


async def until_disconnect(request: Request, work):
    """Await `work`, cancelling it (and so its generation) if the client goes away first."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=0.25)
            if done:
                return task.result()
            if await request.is_disconnected():
                task.cancel()
                raise ApiError(499, "The client disconnected.", "client_disconnected")
    finally:
        if not task.done():
            task.cancel()


def log_and_auth(api, state: ServeState):
    """Wrap the app: the access log outermost (it sees 401s too), then the key check on every request."""

    async def guarded(scope, receive, send):
        if scope["type"] == "http" and state.api_key:
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
            if not key_matches(state.api_key, headers):
                response = JSONResponse(error_body(401, "Missing or wrong API key: send 'Authorization: Bearer KEY' "
                                                        "with the key this server was started with.",
                                                   "invalid_api_key"), status_code=401)
                return await response(scope, receive, send)
        return await api(scope, receive, send)

    return state.log.middleware(guarded)
