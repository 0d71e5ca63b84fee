"""`--quant auto`: measure candidate types and keep the smallest one that stays close to the model.

Candidates are tried from smallest to largest; each is quantised, run in llama.cpp
and compared with the HF model (mean KL divergence and top-1 agreement on the
verification prompts). The first within the bounds wins. The default bounds are
roughly what Q4_K_M keeps on an 8B model (mean KL about 0.03-0.05), so a big model
usually lands on q4_k_m while a tiny one, which loses much more at 4 bits, climbs
to q6_k or q8_0. Without measurements (--no-verify, or llama-cpp-python missing)
the rule of engine.config's `export.gguf_quant` applies: q8_0 under 1B parameters,
q4_k_m above.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

CANDIDATES = ("q4_k_m", "q5_k_m", "q6_k", "q8_0")
MAX_KL = 0.05
MIN_TOP1 = 0.90


@dataclass
class Trial:
    quant: str
    kl: float
    top1: float
    size_bytes: int
    within: bool


def heuristic_quant(n_params: int) -> str:
    """The measurement-free choice: tiny models suffer from 4-bit."""
    return "q8_0" if n_params < 1e9 else "q4_k_m"


def choose_quant(measure: Callable[[str], tuple], max_kl: float = MAX_KL, min_top1: float = MIN_TOP1,
                 candidates=CANDIDATES) -> tuple[str, list]:
    """Try candidates smallest first; `measure(q) -> (kl, top1, size_bytes)`. Returns (choice, trials)."""
    trials = []
    for q in candidates:
        kl, top1, size = measure(q)
        ok = kl <= max_kl and top1 >= min_top1
        trials.append(Trial(q, kl, top1, size, ok))
        if ok:
            return q, trials
    return candidates[-1], trials  # nothing was within bounds: the largest candidate is the closest


def format_trials(trials: list, max_kl: float, min_top1: float) -> str:
    lines = [f"quant advisor (bounds: mean KL <= {max_kl}, top-1 >= {min_top1:.0%}):"]
    for t in trials:
        lines.append(f"  {t.quant:8s} KL {t.kl:.4f}  top-1 {t.top1:6.1%}  {t.size_bytes / 1e6:8.1f} MB  "
                     f"{'within bounds' if t.within else 'too lossy'}")
    return "\n".join(lines)
