"""`stage=orpo`: Odds-Ratio Preference Optimization (TRL's experimental ORPOTrainer).

One stage instead of SFT then DPO: the loss is the SFT loss on the chosen answer plus
`orpo.beta` times a term that raises the odds of the chosen answer over the rejected one.
No reference model, so no reference pass and no second copy in memory. TRL computes the SFT term
over the chosen prompt and answer (as the ORPO authors' code does); the odds ratio uses answers only.
"""

from __future__ import annotations

from engine.train.recipes import register_recipe
from engine.train.recipes.preference import PAIR_METRICS, PairRecipe


@register_recipe("orpo")
class OrpoRecipe(PairRecipe):
    """ORPO on preference pairs; reference-free."""

    metrics = {**PAIR_METRICS, "log_odds_ratio": "log_odds_ratio"}
    progress_metric = "reward_accuracy"


    def trainer_class(self) -> type:
        from engine.train.recipes.pretokenised import experimental_pair_trainer

        return experimental_pair_trainer("orpo")

    def trainer_config(self, common: dict):
        from trl.experimental.orpo import ORPOConfig

        return ORPOConfig(**common, beta=self.cfg.orpo.beta, max_length=self.cfg.sequence.max_len, disable_dropout=True)
