"""`engine serve MODEL [MODEL ...]`: an OpenAI-compatible server on this machine.

    engine serve runs/quickstart/exports/model-q8_0.gguf            # http://127.0.0.1:8000/v1
    engine serve tuned=runs/quickstart base=smollm2-135m-instruct --port 8001
    engine serve runs/quickstart --host 0.0.0.0 --api-key-file ~/.edgetune-key   # other machines: key required

Each MODEL is what `engine chat` takes (run folder, adapter, model folder, .gguf, ONNX folder,
bundled name, hub id), optionally as NAME=MODEL; requests name it by what GET /v1/models lists.
A vision-language model (a SmolVLM folder, a run trained from one, its merged/ folder) also takes
image_url content parts: data: URIs, and file:// paths on a loopback server.
A model loads when first asked for (--preload: at start). Needs the `serve` extra.
"""

from __future__ import annotations

import argparse
import sys


def add_parser(sub) -> None:
    p = sub.add_parser("serve", help="Serve models over the OpenAI API (chat/completions) on 127.0.0.1.",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", metavar="MODEL", help="[NAME=]run folder, .gguf, ONNX folder, model folder, ...")
    p.add_argument("--host", default="127.0.0.1", help="Address to bind; anything but loopback requires a key.")
    p.add_argument("--port", type=int, default=8000, help="Port (0 = any free port; the events say which).")
    p.add_argument("--api-key", default=None, help="Require 'Authorization: Bearer KEY' (or set $EDGETUNE_API_KEY).")
    p.add_argument("--api-key-file", default=None, help="Read the key from the first line of this file.")
    p.add_argument("--template", default=None, help="Chat template for models without one (chatml, llama3, ... or a Jinja file).")
    p.add_argument("--backend", default="auto", choices=["auto", "hf", "gguf", "onnx"], help="Force a backend.")
    p.add_argument("--preload", action="store_true", help="Load every model at start instead of on first request.")
    p.add_argument("--parallel", type=int, default=1, help="Generations at once (each model serves one at a time).")
    p.add_argument("--queue", type=int, default=16, help="Requests that may wait for a slot; more get 429.")
    p.add_argument("--max-tokens-limit", type=int, default=2048, help="Largest max_tokens a request may ask (and the default).")
    p.add_argument("--max-messages", type=int, default=512, help="Most messages in one request.")
    p.add_argument("--max-body-kb", type=int, default=1024,
                   help="Largest request body in KiB (413 beyond); images travel inside it as base64 (4/3 of the file).")
    p.add_argument("--max-images", type=int, default=8, help="Most images in one request (vision-language models).")
    p.add_argument("--temperature", type=float, default=0.7, help="Default when a request gives none (0 = greedy).")
    p.add_argument("--top-p", type=float, default=0.95, help="Default nucleus mass.")
    p.add_argument("--top-k", type=int, default=40, help="Default top-k (requests may send top_k).")
    p.add_argument("--repeat-penalty", type=float, default=1.1, help="Default repeat penalty (requests may send repeat_penalty).")
    p.add_argument("--events", default=None, help="Write JSON-lines events to this file ('-' = stdout).")
    p.add_argument("--quiet", action="store_true", help="No access log on stderr.")
    p.add_argument("--exit-with-stdin", action="store_true",
                   help="Stop when stdin closes (the desktop app's lifeline: its server never outlives it).")
    p.set_defaults(run=run)


def run(args) -> int:
    import os

    from engine.serve import require_serve_deps

    require_serve_deps()
    # llama.cpp's OpenMP workers otherwise spin between decode calls; in a server, whose generating
    # thread does Python work between tokens, they took a core from it: measured 0.2-0.4x the
    # tokens/s of llama-cpp-python's server under load, about 1.0x with this (benchmarks/serve_load.py).
    # It must be set before libgomp loads, i.e. before the first model.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import socket
    import time

    import uvicorn

    from engine.chat.sampling import SamplingParams
    from engine.errors import EdgetuneError
    from engine.events import open_events_target
    from engine.serve.access_log import AccessLog, LockedSink
    from engine.serve.app import build_app
    from engine.serve.auth import is_loopback, require_key_off_loopback, resolve_api_key
    from engine.serve.limits import ServeLimits
    from engine.serve.model_pool import ModelPool, parse_model_args

    if args.exit_with_stdin:
        _exit_when_stdin_closes()
    key = resolve_api_key(args.api_key, args.api_key_file)
    require_key_off_loopback(args.host, key)
    sink = LockedSink(open_events_target(args.events))
    say = (lambda s: print(s, file=sys.stderr, flush=True)) if args.events == "-" else (lambda s: print(s, flush=True))
    limits = ServeLimits(max_body_bytes=args.max_body_kb * 1024, max_tokens=args.max_tokens_limit,
                         max_messages=args.max_messages, parallel=args.parallel, queue=args.queue,
                         max_images=args.max_images, local_files=is_loopback(args.host)).check()
    defaults = SamplingParams(temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
                              repeat_penalty=args.repeat_penalty)

    def loaded(model, seconds):
        say(f"loaded {model.name} ({model.label}) in {seconds:.1f} s")
        sink.emit("model_loaded", model=model.name, label=model.label, seconds=round(seconds, 3),
                  accepts_images=bool(getattr(model.backend, "accepts_images", False)))

    pool = ModelPool(parse_model_args(args.models), backend=args.backend, template=args.template, on_loaded=loaded)
    pool.check_files()
    if args.preload:
        from engine.serve.api_errors import ApiError

        for name in pool.names():
            try:
                pool.load(name)
            except ApiError as e:  # the loader's own message: not found, no template, too big for free memory
                raise EdgetuneError(e.message) from None
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as e:
        raise EdgetuneError(f"Cannot listen on {args.host}:{args.port} ({e.strerror}). Is another server using it? "
                            f"Pick another with --port (0 = any free port).") from None
    # listening before serve_started goes out (uvicorn reports startup before its own listen(): a client that
    # connected at once was refused); connections made meanwhile wait in the backlog until uvicorn accepts them
    sock.listen(2048)
    port = sock.getsockname()[1]
    host = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{host}:{port}/v1"

    def started():
        say(f"serving {', '.join(pool.names())} at {url} (OpenAI API{', key required' if key else ''}); Ctrl-C stops")
        sink.emit("serve_started", url=url, host=args.host, port=port, models=pool.names(), auth=bool(key))

    log = AccessLog(stream=open(os.devnull, "w") if args.quiet else sys.stderr, sink=sink if args.events else None)
    app = build_app(pool, limits, api_key=key, defaults=defaults, log=log, on_startup=started)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=5)
    start = time.perf_counter()
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn has already finished the requests in flight: a normal stop
        pass
    finally:
        sock.close()
        sink.emit("serve_stopped", seconds=round(time.perf_counter() - start, 3))
        sink.close()
    return 0


def _exit_when_stdin_closes() -> None:
    """A parent that dies, even by SIGKILL, closes our stdin: then stop as Ctrl-C would (uvicorn's
    handler finishes the requests in flight), on every OS."""
    import _thread
    import threading

    def watch():
        try:
            while sys.stdin.buffer.read(4096):
                pass
        except (OSError, ValueError):
            pass
        _thread.interrupt_main()  # runs the SIGINT handler in the main thread

    threading.Thread(target=watch, daemon=True, name="stdin-lifeline").start()
