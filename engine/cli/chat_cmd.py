"""`engine chat MODEL`: talk to a base model, a run, a GGUF or an ONNX export in the terminal.

    engine chat runs/quickstart                       # adapter applied on its base
    engine chat runs/quickstart/exports/model-q8_0.gguf
    echo "Who makes the Quillon Q7?" | engine chat runs/quickstart --temperature 0
    engine chat runs/shapes --image photo.png -m "What colour is the shape?"   # a vision-language model
    engine chat --compare smollm2-135m-instruct runs/quickstart runs/quickstart/exports/model-q8_0.gguf

Interactive commands: /reset, /system TEXT, /params [key=value ...], /image PATH, /quit. End a line
with a backslash to continue the message on the next line. With stdin a pipe, each
line is one message and each answer is printed on its own line(s).
"""

from __future__ import annotations

import sys
import textwrap
import time

HELP = ("/reset  clear the history   /system TEXT  set the system prompt   /params [k=v ...]  show or set sampling   "
        "/image PATH  send an image with the next message   /quit")


def add_parser(sub) -> None:
    p = sub.add_parser("chat", help="Chat with a model, run, GGUF or ONNX export; --compare shows answers side by side.",
                       description=__doc__, formatter_class=__import__("argparse").RawDescriptionHelpFormatter)
    p.add_argument("model", nargs="?", help="Run folder, adapter, model folder, .gguf, ONNX folder, bundled name or hub id.")
    p.add_argument("--compare", nargs="+", metavar="MODEL", help="Two or three models: same prompt, answers side by side.")
    p.add_argument("--system", default=None, help="System prompt.")
    p.add_argument("--template", default=None, help="Chat template for a GGUF without one: chatml, llama3, gemma, phi3 or a Jinja file.")
    p.add_argument("--backend", default="auto", choices=["auto", "hf", "gguf", "onnx"], help="Force a backend.")
    p.add_argument("--temperature", type=float, default=0.7, help="0 = greedy (deterministic).")
    p.add_argument("--top-p", type=float, default=0.95, help="Nucleus sampling mass.")
    p.add_argument("--top-k", type=int, default=40, help="Sample among the k most likely tokens.")
    p.add_argument("--repeat-penalty", type=float, default=1.1, help="Penalise recently generated tokens (1 = off).")
    p.add_argument("--max-tokens", type=int, default=256, help="Longest answer in tokens.")
    p.add_argument("--seed", type=int, default=0, help="Sampling seed.")
    p.add_argument("--message", "-m", action="append", default=None, help="Send this message (repeatable) and exit.")
    p.add_argument("--image", action="append", default=None, metavar="FILE",
                   help="Send this image with the first message (repeatable; vision-language models only).")
    p.set_defaults(run=run)


def _sampling(args) -> dict:
    return dict(temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
                repeat_penalty=args.repeat_penalty, max_tokens=args.max_tokens, seed=args.seed)


def run(args) -> int:
    from engine.chat import ChatSession
    from engine.errors import EdgetuneError

    if args.compare:
        models = ([args.model] if args.model else []) + args.compare
        if not 2 <= len(models) <= 3:
            raise EdgetuneError("--compare takes two or three models, e.g. --compare smollm2-135m-instruct runs/quickstart")
        sessions = [ChatSession(m, system=args.system, backend="auto", template=args.template, **_sampling(args)) for m in models]
        return _loop(lambda text: _compare(sessions, text), sessions, args)
    if not args.model:
        raise EdgetuneError("Which model? e.g. engine chat runs/quickstart (or smollm2-135m-instruct).")
    session = ChatSession(args.model, system=args.system, backend=args.backend, template=args.template, **_sampling(args))
    for image in args.image or ():
        session.attach_image(image)
    return _loop(lambda text: _answer(session, text), [session], args)


def _answer(session, text: str) -> None:
    for chunk in session.send(text):
        print(chunk, end="", flush=True)
    print(flush=True)


def _compare(sessions, text: str) -> None:
    """Answer with each model in turn, then print the answers in columns with tokens/s."""
    import shutil

    answers = []
    for s in sessions:
        answers.append((s.label, s.ask(text), s.last_stats))
    width = max(24, (shutil.get_terminal_size((120, 20)).columns - 3 * (len(answers) - 1)) // len(answers))
    cols = [[f"{label} ({st['tokens_per_s']:.1f} tok/s)", "-" * min(width, 60)] + textwrap.wrap(ans or "(empty)", width)
            for label, ans, st in answers]
    for row in range(max(len(c) for c in cols)):
        print(" | ".join((c[row] if row < len(c) else "").ljust(width) for c in cols).rstrip())
    print(flush=True)


def _command(line: str, sessions) -> bool:
    """Handle a /command; True if the line was one."""
    if not line.startswith("/"):
        return False
    cmd, _, rest = line.partition(" ")
    if cmd == "/reset":
        for s in sessions:
            s.reset()
        print("(history cleared)")
    elif cmd == "/system":
        for s in sessions:
            s.system = rest.strip() or None
            s.reset()
        print(f"(system prompt {'set' if rest.strip() else 'cleared'}; history cleared)")
    elif cmd == "/params":
        try:
            for s in sessions:
                s.params.update(**dict(kv.split("=", 1) for kv in rest.split()))
        except ValueError as e:
            print(f"(error: {e})")
        print("(" + ", ".join(f"{k}={v}" for k, v in sessions[0].params.as_dict().items()) + ")")
    elif cmd == "/image":
        from engine.errors import EdgetuneError

        try:
            for s in sessions:
                s.attach_image(rest.strip())
            print(f"(image {rest.strip()} goes with the next message)")
        except EdgetuneError as e:
            print(f"(error: {e})")
    elif cmd in ("/quit", "/exit"):
        raise EOFError
    else:
        print(f"(unknown command {cmd}) {HELP}")
    return True


def _loop(answer, sessions, args) -> int:
    if args.message:
        for m in args.message:
            answer(m)
        return 0
    interactive = sys.stdin.isatty()
    if interactive:
        print(f"chatting with {', '.join(s.label for s in sessions)}.  {HELP}")
    buffer: list[str] = []
    while True:
        try:
            line = input("> " if interactive and not buffer else ("… " if interactive else ""))
        except (EOFError, KeyboardInterrupt):
            if interactive:
                print()
            return 0
        if line.endswith("\\"):
            buffer.append(line[:-1])
            continue
        text = "\n".join(buffer + [line]).strip()
        buffer = []
        if not text:
            continue
        try:
            if _command(text, sessions):
                continue
        except EOFError:
            return 0
        start = time.perf_counter()
        answer(text)
        if interactive and len(sessions) == 1:
            st = sessions[0].last_stats
            print(f"  [{st.get('tokens', 0)} tokens, {st.get('tokens_per_s', 0):.1f} tok/s, {time.perf_counter() - start:.1f} s]")
