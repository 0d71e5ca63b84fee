"""`engine serve` under load vs llama-cpp-python's own OpenAI server, on the same GGUF, on loopback.

    python benchmarks/serve_load.py                                   # bundled SmolLM2 as q8_0, 4 clients, 2 x 20 s
    python benchmarks/serve_load.py --model runs/q/exports/model-q8_0.gguf --clients 8 --seconds 30 --rounds 3

N client threads each send chat completions back to back (greedy, the same rotating prompts
for both servers, so both generate the same tokens) for a bounded time. Rounds alternate the
two servers (ours, theirs, ours, ...) so a busy machine slows both alike. Reported per server:
requests, failed requests, p50/p95 latency, aggregate generated tokens/s, peak RSS of the
server process; and the tokens/s ratio ours/theirs (the cost of our HTTP layer, target >= 0.9).
The baseline needs `pip install 'llama-cpp-python[server]'`; without it only ours is measured.
Without --model, the bundled model is converted once to q8_0 in the edgetune cache.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PROMPTS = ["Name the capital city of France.", "Write two sentences about a lantern that never goes out.",
           "List three uses of a paper clip.", "Explain in one paragraph why the sky is blue."]
BASELINE_DEPS = ("sse_starlette", "starlette_context", "pydantic_settings", "fastapi", "uvicorn")


def bundled_q8_0() -> Path:
    """The bundled SmolLM2 converted to q8_0 once, kept in the edgetune cache."""
    from engine.models import resolve_model
    from engine.paths import cache_dir
    from exporters.gguf.convert import convert_hf_to_gguf

    out = cache_dir() / "benchmarks" / "smollm2-135m-instruct-q8_0.gguf"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        convert_hf_to_gguf(resolve_model("smollm2-135m-instruct").path, out, "q8_0")
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A server child process on loopback; `url` once GET /v1/models answers; peak RSS from the kernel."""

    def __init__(self, name: str, cmd: list[str], port: int, model_id: str):
        self.name, self.model_id, self.port = name, model_id, port
        self.url = f"http://127.0.0.1:{port}/v1"
        self.log = open(os.devnull, "w")
        self.proc = subprocess.Popen(cmd, cwd=REPO, stdout=self.log, stderr=self.log)

    def wait_ready(self, timeout: float = 300) -> None:
        import httpx

        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} server exited with {self.proc.returncode}")
            try:
                if httpx.get(f"{self.url}/models", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"{self.name} server did not start in {timeout:.0f} s")

    def peak_rss_mb(self) -> float:
        """VmHWM (the kernel's high-water mark of resident memory), else the current RSS."""
        status = Path(f"/proc/{self.proc.pid}/status")
        if status.is_file():
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
        import psutil

        return psutil.Process(self.proc.pid).memory_info().rss / 2**20

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()


def start_ours(model: Path, clients: int) -> Server:
    port = free_port()
    return Server("edgetune", [sys.executable, "-m", "engine", "serve", f"bench={model}", "--host", "127.0.0.1",
                               "--port", str(port), "--queue", str(clients * 2), "--quiet", "--preload"], port, "bench")


def start_theirs(model: Path, n_ctx: int) -> Server:
    port = free_port()
    return Server("llama-cpp-python", [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host",
                                       "127.0.0.1", "--port", str(port), "--n_ctx", str(n_ctx), "--verbose", "False"],
                  port, str(model))


def load(server: Server, clients: int, seconds: float, max_tokens: int) -> dict:
    """`clients` threads asking back to back for `seconds`; latency, tokens and failures."""
    import httpx

    stop_at = time.monotonic() + seconds
    lat, tokens, failures, lock = [], [0], [], threading.Lock()

    def client(i: int) -> None:
        n = i
        with httpx.Client(timeout=300) as http:
            while time.monotonic() < stop_at:
                body = {"model": server.model_id, "messages": [{"role": "user", "content": PROMPTS[n % len(PROMPTS)]}],
                        "max_tokens": max_tokens, "temperature": 0, "top_k": 40, "top_p": 0.95,
                        "repeat_penalty": 1.1, "seed": 0}
                n += 1
                t0 = time.perf_counter()
                try:
                    r = http.post(f"{server.url}/chat/completions", json=body)
                    ok = r.status_code == 200
                    used = r.json()["usage"]["completion_tokens"] if ok else 0
                except (httpx.HTTPError, ValueError, KeyError) as e:
                    ok, used, r = False, 0, e
                with lock:
                    if ok:
                        lat.append(time.perf_counter() - t0)
                        tokens[0] += used
                    else:
                        failures.append(str(getattr(r, "status_code", r)))

    start = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start  # includes the requests finishing after the deadline
    q = statistics.quantiles(lat, n=20) if len(lat) >= 2 else [float("nan")] * 19
    return {"requests": len(lat), "failed": len(failures), "failures": failures[:5],
            "p50_s": statistics.median(lat) if lat else float("nan"), "p95_s": q[18],
            "tokens": tokens[0], "seconds": elapsed, "tokens_per_s": tokens[0] / elapsed}


def merge(rounds: list[dict]) -> dict:
    """Rounds of one server pooled: sums, and the median of the per-round latencies and rates."""
    return {"requests": sum(r["requests"] for r in rounds), "failed": sum(r["failed"] for r in rounds),
            "p50_s": statistics.median(r["p50_s"] for r in rounds), "p95_s": statistics.median(r["p95_s"] for r in rounds),
            "tokens_per_s": statistics.median(r["tokens_per_s"] for r in rounds),
            "rounds_tokens_per_s": [round(r["tokens_per_s"], 1) for r in rounds]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="A .gguf (default: the bundled model as q8_0).")
    ap.add_argument("--clients", type=int, default=4, help="Concurrent clients.")
    ap.add_argument("--seconds", type=float, default=20, help="Length of each round.")
    ap.add_argument("--rounds", type=int, default=2, help="Rounds per server (alternating).")
    ap.add_argument("--max-tokens", type=int, default=64, help="max_tokens of every request.")
    ap.add_argument("--json", default=None, help="Also write the results here.")
    args = ap.parse_args(argv)
    for name in ("clients", "rounds", "max_tokens"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1")

    model = Path(args.model) if args.model else bundled_q8_0()
    missing = [m for m in BASELINE_DEPS if importlib.util.find_spec(m) is None]
    if missing:
        print(f"skip: the llama-cpp-python server baseline needs {', '.join(missing)}: "
              f"pip install 'llama-cpp-python[server]'. Measuring edgetune only.", file=sys.stderr)
    makers = {"edgetune": lambda: start_ours(model, args.clients)}
    if not missing:
        makers["llama-cpp-python"] = lambda: start_theirs(model, 2048)
    print(f"{model.name}: {args.clients} clients, {args.rounds} x {args.seconds:.0f} s per server, "
          f"max_tokens {args.max_tokens}, {os.cpu_count()} CPUs", flush=True)
    results: dict[str, list] = {name: [] for name in makers}
    peak: dict[str, float] = {name: 0.0 for name in makers}
    for rnd in range(args.rounds):
        for name, make in makers.items():
            server = make()
            try:
                server.wait_ready()
                load(server, args.clients, 2, args.max_tokens)  # warm-up: caches, first allocations
                r = load(server, args.clients, args.seconds, args.max_tokens)
                peak[name] = max(peak[name], server.peak_rss_mb())
            finally:
                server.stop()
            results[name].append(r)
            print(f"  round {rnd + 1} {name:17s} {r['requests']:4d} req  {r['failed']} failed  "
                  f"p50 {r['p50_s']:.2f} s  p95 {r['p95_s']:.2f} s  {r['tokens_per_s']:6.1f} tok/s", flush=True)
    summary = {name: {**merge(rounds), "peak_rss_mb": round(peak[name])} for name, rounds in results.items()}
    print(f"\n{'server':17s} {'requests':>8s} {'failed':>6s} {'p50 s':>6s} {'p95 s':>6s} {'tok/s':>7s} {'peak RSS':>9s}")
    for name, s in summary.items():
        print(f"{name:17s} {s['requests']:8d} {s['failed']:6d} {s['p50_s']:6.2f} {s['p95_s']:6.2f} "
              f"{s['tokens_per_s']:7.1f} {s['peak_rss_mb']:6d} MB")
    if "llama-cpp-python" in summary:
        # each round's ratio pairs two back-to-back measurements, so load from other jobs mostly cancels
        paired = [a["tokens_per_s"] / b["tokens_per_s"] for a, b in zip(results["edgetune"], results["llama-cpp-python"])]
        ratio = statistics.median(paired)
        summary["ratio_tokens_per_s"] = round(ratio, 3)
        summary["paired_ratios"] = [round(r, 3) for r in paired]
        print(f"\nedgetune / llama-cpp-python tokens/s: {ratio:.2f}x median of paired rounds "
              f"{', '.join(f'{r:.2f}' for r in paired)} (target >= 0.90)")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    return 1 if any(s["failed"] for k, s in summary.items() if isinstance(s, dict)) else 0


if __name__ == "__main__":
    sys.exit(main())
