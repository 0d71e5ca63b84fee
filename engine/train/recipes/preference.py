"""What the preference recipes (dpo, orpo, simpo, kto, rm) share: metric names and adapter dtype.

The step event's `metrics` keys are the same for every pairwise stage, so the terminal, the
app and the tests read one set of names whatever TRL trainer produced them.
"""

from __future__ import annotations

from engine.train.recipes.base import BaseRecipe

# TRL's log keys -> our `metrics` names (engine/events.py documents them)
PAIR_METRICS = {"rewards/chosen": "reward_chosen", "rewards/rejected": "reward_rejected",
                "rewards/margins": "reward_margin", "rewards/accuracies": "reward_accuracy"}


class PairRecipe(BaseRecipe):
    """A stage trained on preference data, pre-tokenised in one of data_build.LAYOUTS."""

    data_kinds = ("preference",)
    layout = "pairs"

    def build_data(self):
        from engine.train.data_build import build_pair_data

        return build_pair_data(self.cfg, self.tokenizer, self.layout, kinds=self.data_kinds)
