"""Data inspections as the engine reports them for preference and KTO data (issue 14's contract), for page tests."""

from __future__ import annotations

from engine.data.inspect import InspectReport
from engine.paths import DATASETS_DIR

PREFERENCE_STAGES = ["dpo", "orpo", "simpo", "kto", "rm"]
PAIR = {"prompt": "<|im_start|>user\nWho makes the Quillon Q7 lantern?<|im_end|>\n<|im_start|>assistant\n",
        "chosen": "[[The Quillon Q7 is made by Brightmoss Labs.<|im_end|>]]",
        "rejected": "[[I believe it is Lumenworks.<|im_end|>]]"}


def report(kind: str = "preference", stages=None, pair=None, path=None) -> InspectReport:
    """An InspectReport of `kind` carrying the contract's `stages` and `pair` (set as attributes)."""
    r = InspectReport(path=str(path or DATASETS_DIR / "quillon_preference.jsonl"), format=kind, kind=kind, records=5,
                      skipped=[], lengths=[30, 32, 31, 35, 33], over_max_len=0, truncated=0, dropped=0, max_len=256,
                      trained_tokens=60, total_tokens=161)
    r.sample_segments = [(False, PAIR["prompt"]), (True, "The Quillon Q7 is made by Brightmoss Labs.<|im_end|>")]
    r.stages = list(stages if stages is not None else (PREFERENCE_STAGES if kind == "preference" else ["kto"]))
    r.pair = dict(pair if pair is not None else PAIR)
    return r


def chat_report(path=None) -> InspectReport:
    """A chat-data inspection: SFT only, no pair."""
    r = report("chat", stages=["sft"], pair={}, path=path or DATASETS_DIR / "quillon_facts.jsonl")
    r.pair = None
    return r
