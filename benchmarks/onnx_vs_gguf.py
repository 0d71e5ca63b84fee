"""ONNX int4 vs GGUF q4_k_m / q8_0: greedy generation speed and file size on this CPU.

    python benchmarks/onnx_vs_gguf.py runs/quickstart            # a tuned run (the issue's case)
    python benchmarks/onnx_vs_gguf.py smollm2-135m-instruct --runs 7 --tokens 128 --threads 1 --json bench.json

Missing exports are built first (`engine export onnx ... --precision int4` and
`engine export gguf ... --quant q4_k_m,q8_0`, both without their verification); existing
ones in the source's exports folder are reused. Each engine then decodes exactly
`--tokens` tokens greedily after the same chat prompt (the same token ids for both):
onnxruntime-genai for ONNX, llama-cpp-python for GGUF, one warm-up, then `--runs` timed
rounds interleaved across the formats so a busy machine slows all of them alike.
Reported: median decode tokens/s (prompt excluded), median prefill, size on disk, and
ratios against the named baseline, GGUF q4_k_m.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BASELINE = "gguf-q4_k_m"
GGUF_QUANTS = ("q4_k_m", "q8_0")
PROMPT = [{"role": "user", "content": "Tell me a short story about a lantern that never goes out."}]


def ensure_exports(source: str, rebuild: bool = False) -> dict[str, Path]:
    """name -> model path (ONNX folder or .gguf file), building what is missing (everything with `rebuild`)."""
    from engine.runs import exports_dir_for

    exports = Path(exports_dir_for(source))
    onnx_dir = exports / "onnx-int4"
    if rebuild:
        for q in GGUF_QUANTS:
            (exports / f"model-{q}.gguf").unlink(missing_ok=True)
    else:
        kept = [onnx_dir] if (onnx_dir / "genai_config.json").is_file() else []
        kept += [exports / f"model-{q}.gguf" for q in GGUF_QUANTS if (exports / f"model-{q}.gguf").is_file()]
        for path in kept:
            print(f"reusing {path} (--rebuild to export it again)", file=sys.stderr)
    if rebuild or not (onnx_dir / "genai_config.json").is_file():
        subprocess.run([sys.executable, "-m", "engine", "export", "onnx", source, "--precision", "int4",
                        "--no-verify", "--no-speed"], check=True, cwd=REPO)
    missing = [q for q in GGUF_QUANTS if not (exports / f"model-{q}.gguf").is_file()]
    if missing:
        subprocess.run([sys.executable, "-m", "engine", "export", "gguf", source, "--quant", ",".join(missing),
                        "--no-verify", "--no-modelfile", "--out", str(exports)], check=True, cwd=REPO)
    return {"onnx-int4": onnx_dir, **{f"gguf-{q}": exports / f"model-{q}.gguf" for q in GGUF_QUANTS}}


def size_mb(path: Path) -> float:
    if path.is_dir():  # the model files of an ONNX export, not its reports
        from exporters.onnx.exporter import folder_size_mb

        return folder_size_mb(path)
    return path.stat().st_size / 2**20


class OnnxRunner:
    def __init__(self, folder: Path, threads: int):
        from exporters.onnx.runtime import OnnxChatModel

        self.model = OnnxChatModel(folder, threads=threads)

    def run(self, prompt_ids: list[int], n: int) -> tuple[float, float]:
        """(decode tokens/s, prefill ms) for exactly n new tokens."""
        for _ in self.model.generate_ids(prompt_ids, n, min_new_tokens=n):
            pass
        return self.model.last.tokens_per_s, self.model.last.prefill_s * 1000


class GgufRunner:
    def __init__(self, path: Path, threads: int):
        from exporters.gguf.llama_runtime import load_llama

        self.llm = load_llama(path, n_ctx=1024, n_threads=threads, n_threads_batch=threads, n_batch=512,
                         logits_all=False, verbose=False)

    def run(self, prompt_ids: list[int], n: int) -> tuple[float, float]:
        self.llm.reset()
        start = time.perf_counter()
        first = None
        count = 0
        # generate() never stops by itself (create_completion is what stops at EOS), so n tokens are n tokens
        for _ in self.llm.generate(prompt_ids, top_k=1, top_p=1.0, temp=0.0, repeat_penalty=1.0, reset=True):
            count += 1
            if first is None:
                first = time.perf_counter()
            if count == n:
                break
        end = time.perf_counter()
        return (n - 1) / (end - first), (first - start) * 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("source", nargs="?", default="smollm2-135m-instruct", help="Run folder or model spec.")
    ap.add_argument("--runs", type=int, default=5, help="Timed rounds per format (median reported).")
    ap.add_argument("--tokens", type=int, default=64, help="New tokens per round.")
    ap.add_argument("--threads", type=int, default=os.cpu_count(),
                    help="CPU threads for both engines (default: all). On a shared, busy machine use 1: llama.cpp's "
                         "OpenMP threads spin-wait and collapse when the cores are oversubscribed.")
    ap.add_argument("--json", default=None, help="Also write the results here.")
    ap.add_argument("--rebuild", action="store_true", help="Export again instead of reusing the source's exports.")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from engine.models.loading import tokenizer_from_dir
    from engine.runs import model_dir_for

    paths = ensure_exports(args.source, args.rebuild)
    tok = tokenizer_from_dir(model_dir_for(args.source))
    prompt_ids = tok.apply_chat_template(PROMPT, tokenize=True, add_generation_prompt=True, return_dict=False)
    prompt_ids = list(prompt_ids["input_ids"] if isinstance(prompt_ids, dict) else prompt_ids)
    runners = {name: (OnnxRunner if name.startswith("onnx") else GgufRunner)(path, args.threads)
               for name, path in paths.items()}
    for r in runners.values():
        r.run(prompt_ids, args.tokens)  # warm-up
    speeds = {name: [] for name in runners}
    prefills = {name: [] for name in runners}
    for _ in range(args.runs):
        for name, r in runners.items():
            tps, pre = r.run(prompt_ids, args.tokens)
            speeds[name].append(tps)
            prefills[name].append(pre)

    results = {name: {"size_mb": round(size_mb(paths[name]), 1), "tokens_per_s": round(statistics.median(speeds[name]), 1),
                      "prefill_ms": round(statistics.median(prefills[name]), 1), "all_tokens_per_s": [round(s, 1) for s in speeds[name]]}
               for name in runners}
    base = results[BASELINE]
    print(f"source: {args.source}   prompt: {len(prompt_ids)} tokens   decode: {args.tokens} tokens greedy   "
          f"runs: {args.runs} (median)   threads: {args.threads} of {os.cpu_count()}   load avg: {os.getloadavg()[0]:.1f}")
    print(f"{'format':<14}{'size MB':>9}{'size/base':>10}{'tok/s':>8}{'speed/base':>11}{'prefill ms':>12}")
    for name, r in results.items():
        print(f"{name:<14}{r['size_mb']:>9.1f}{r['size_mb'] / base['size_mb']:>10.2f}{r['tokens_per_s']:>8.1f}"
              f"{r['tokens_per_s'] / base['tokens_per_s']:>11.2f}{r['prefill_ms']:>12.1f}")
    print(f"baseline: {BASELINE}")
    if args.json:
        Path(args.json).write_text(json.dumps({"source": args.source, "baseline": BASELINE, "runs": args.runs,
                                               "tokens": args.tokens, "threads": args.threads, "prompt_tokens": len(prompt_ids),
                                               "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
