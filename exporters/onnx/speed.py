"""Tokens per second of an ONNX export on this machine (onnxruntime-genai, greedy).

One warm-up generation, then `runs` timed ones of exactly `new_tokens` tokens (the
end-of-turn token is held back until then, so every run does the same work); the median
is reported. Decode speed excludes the prompt; prefill is reported apart.
"""

from __future__ import annotations

import statistics
from pathlib import Path

SPEED_PROMPT = [{"role": "user", "content": "Tell me a short story about a lantern that never goes out."}]


def measure_speed(folder: str | Path, new_tokens: int = 64, runs: int = 3, provider: str = "cpu", model=None,
                  threads=None) -> dict:
    """{"tokens_per_s": median decode tokens/s, "prefill_ms": median, "new_tokens", "runs", "provider"}."""
    from engine.runtimes.onnx_genai import OnnxChatModel

    model = model or OnnxChatModel(folder, provider=provider, threads=threads)
    prompt_ids = model.encode(model.render(SPEED_PROMPT))
    speeds, prefills = [], []
    for i in range(runs + 1):
        for _ in model.generate_ids(prompt_ids, new_tokens, min_new_tokens=new_tokens):
            pass
        if i:  # the first run warms up the session (allocations, thread pool)
            speeds.append(model.last.tokens_per_s)
            prefills.append(model.last.prefill_s * 1000)
    return {"tokens_per_s": round(statistics.median(speeds), 1), "prefill_ms": round(statistics.median(prefills), 1),
            "prompt_tokens": len(prompt_ids), "new_tokens": new_tokens, "runs": runs, "provider": provider}
