"""How the app names a training recipe's own metrics (the `metrics` dict of step events).

    metric_label("reward_margin")            # 'reward margin (chosen − rejected)'
    metrics_summary({"reward_accuracy": 0.75, "reward_margin": 0.42})   # 'acc 0.75 · margin 0.42'

The engine decides which metrics a recipe reports (DPO/ORPO/SimPO: rewards of the
chosen and rejected answers, their margin and how often chosen wins; KTO: the
same plus the KL term; a reward model: accuracy and margin). The app plots
whatever keys arrive; these tables only give known keys readable names and
stable colours. Keys holding a share (accuracy) are drawn on a 0..1 axis.
"""

from __future__ import annotations

# key -> (label on the plot, colour)
METRICS: dict[str, tuple[str, str]] = {
    "reward_accuracy": ("reward accuracy (chosen wins)", "#1a7f37"),
    "accuracy": ("accuracy (chosen scored higher)", "#1a7f37"),
    "reward_margin": ("reward margin (chosen − rejected)", "#8250df"),
    "margin": ("score margin (chosen − rejected)", "#8250df"),
    "reward_chosen": ("reward of chosen", "#2da44e"),
    "reward_rejected": ("reward of rejected", "#cf222e"),
    "kl": ("KL to the reference", "#bf8700"),
    "log_odds_ratio": ("log odds ratio", "#0969da"),
    "reward": ("mean reward of the sampled answers", "#1a7f37"),
    "reward_std": ("reward spread", "#8250df"),
    "completion_len": ("answer length (tokens)", "#0969da"),
    "truncated": ("answers cut at max length", "#cf222e"),
    "clip_ratio": ("clipped policy ratio", "#bf8700"),
    "flat_groups": ("groups with equal rewards", "#57606a"),
    "entropy": ("entropy", "#1b7c83"),
}
SHARES = {"truncated", "clip_ratio", "flat_groups"}  # 0..1 without "accuracy" in the name
AXES = {"share": "share (0..1)", "value": "value", "length": "tokens"}  # top to bottom
FALLBACK_COLOURS = ("#57606a", "#e16f24", "#1b7c83", "#a475f9", "#d4a72c")

# What the progress line shows, in this order, when the step carries it.
SUMMARY = (("reward", "reward"), ("reward_accuracy", "acc"), ("accuracy", "acc"), ("reward_margin", "margin"), ("margin", "margin"),
           ("kl", "kl"))


def metric_label(key: str) -> str:
    """A readable name for a metric key (unknown keys: underscores become spaces)."""
    return METRICS[key][0] if key in METRICS else key.replace("_", " ")


def metric_colour(key: str, index: int = 0) -> str:
    """A stable colour for a known key; unknown keys take the fallback colours in turn."""
    return METRICS[key][1] if key in METRICS else FALLBACK_COLOURS[index % len(FALLBACK_COLOURS)]


def is_share(key: str) -> bool:
    """Whether the metric is a share in 0..1 (drawn on its own 0..1 axis)."""
    return "accuracy" in key or key in SHARES


def axis_of(key: str) -> str:
    """Which of AXES the metric is drawn on: shares on 0..1, lengths in tokens, everything else (rewards, KL) as values."""
    if is_share(key):
        return "share"
    return "length" if key.endswith("_len") else "value"


def numeric_metrics(metrics) -> dict[str, float]:
    """The float-valued entries of a step event's `metrics` (tolerates a missing or odd field)."""
    if not isinstance(metrics, dict):
        return {}
    out = {}
    for key, value in metrics.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[str(key)] = float(value)
    return out


def metrics_summary(metrics: dict) -> str:
    """The main metrics in a few words, e.g. 'acc 0.75 · margin 0.42' ('' when none of them is there)."""
    parts, seen = [], set()
    for key, short in SUMMARY:
        if key in metrics and short not in seen:
            seen.add(short)
            parts.append(f"{short} {metrics[key]:.2f}")
    return " · ".join(parts)
