"""The `completions` event: a few sampled answers with their rewards at every logging step.

People tuning RL want to see what the model is actually saying, not only the mean reward. TRL's
GRPO/RLOO trainers keep the last generation batch (prompts, completions, per-reward scores,
advantages) in `trainer._logs`; this callback reads the newest `count` of them when a step is logged.
"""

from __future__ import annotations

from transformers import TrainerCallback


def _text(value) -> str:
    if isinstance(value, list):  # messages: the last user turn (prompt) or the assistant's answer
        value = value[-1].get("content", "") if value and isinstance(value[-1], dict) else ""
    return str(value)


class CompletionsCallback(TrainerCallback):
    """Emits `completions` events from the trainer's last sampled batch."""

    def __init__(self, sink, trainer, count: int):
        self.sink, self.trainer, self.count = sink, trainer, count

    def on_log(self, args, state, control, logs=None, **kw):
        if "loss" not in (logs or {}):
            return
        rec = getattr(self.trainer, "_logs", None)
        if not rec or not rec.get("completion"):
            return
        prompts, completions = list(rec["prompt"]), list(rec["completion"])
        rewards = {name: list(values) for name, values in rec["rewards"].items()}
        advantages = list(rec["advantages"])
        n = len(completions)
        samples = []
        for i in range(max(0, n - self.count), n):
            samples.append({"prompt": _text(prompts[i]), "completion": _text(completions[i]),
                            "rewards": {k: round(float(v[i]), 4) for k, v in rewards.items() if i < len(v)},
                            "advantage": round(float(advantages[i]), 4) if i < len(advantages) else None})
        self.sink.emit("completions", step=state.global_step, samples=samples)
