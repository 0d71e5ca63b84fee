"""Every reward wrapped so that a failure inside it stops the run with an error naming it.

A reward that raises, returns the wrong number of values or a non-number raises RewardFailed:
the reward's name, the step, and for an exception the traceback's last frame (the user's line).
The base recipe turns it into an `error` event of kind 'reward'; the last checkpoint stays intact.
"""

from __future__ import annotations

import math
import traceback

from engine.errors import EdgetuneError


class RewardFailed(EdgetuneError):
    """A reward function failed during training."""

    kind = "reward"

    def __init__(self, message: str, hint: str):
        super().__init__(message)
        self.hint = hint


def guarded(fn, spec):
    """`fn` under the reward's name, checked on every call."""
    name = spec.name

    def reward(prompts, completions, **kwargs):
        state = kwargs.get("trainer_state")
        step = (state.global_step + 1) if state is not None else "?"
        hint = f"fix reward '{spec.text or name}', then resume with --resume latest (the last checkpoint is intact)"
        try:
            out = fn(prompts=prompts, completions=completions, **kwargs)
        except RewardFailed:
            raise
        except Exception as e:
            frame = traceback.extract_tb(e.__traceback__)[-1]
            raise RewardFailed(f"reward '{name}' raised {type(e).__name__}: {e} at step {step} "
                               f"({frame.filename}:{frame.lineno}, in {frame.name})", hint) from None
        try:
            values = [None if v is None else float(v) for v in out]
        except (TypeError, ValueError):
            raise RewardFailed(f"reward '{name}' returned {type(out).__name__} at step {step}; it must return a list "
                               f"of floats, one per completion", hint) from None
        if len(values) != len(completions):
            raise RewardFailed(f"reward '{name}' returned {len(values)} values for {len(completions)} completions "
                               f"at step {step}; return one float per completion", hint)
        if any(v is not None and not math.isfinite(v) for v in values):
            raise RewardFailed(f"reward '{name}' returned a NaN or infinite value at step {step}", hint)
        return values

    reward.__name__ = name
    return reward
