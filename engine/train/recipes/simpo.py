"""`stage=simpo`: SimPO, the length-normalised reference-free preference loss (TRL's CPOTrainer).

TRL runs SimPO as CPO with `loss_type='simpo'`; `cpo_alpha=0` leaves out CPO's extra SFT term,
which makes it SimPO as published: reward = beta * mean log-prob of the answer, loss pushes the
chosen reward above the rejected one by the margin `simpo.gamma`.
"""

from __future__ import annotations

from engine.train.recipes import register_recipe
from engine.train.recipes.preference import PAIR_METRICS, PairRecipe


@register_recipe("simpo")
class SimpoRecipe(PairRecipe):
    """SimPO on preference pairs; reference-free."""

    metrics = PAIR_METRICS
    progress_metric = "reward_accuracy"


    def trainer_class(self) -> type:
        from engine.train.recipes.pretokenised import experimental_pair_trainer

        return experimental_pair_trainer("cpo")

    def trainer_config(self, common: dict):
        from trl.experimental.cpo import CPOConfig

        s = self.cfg.simpo
        return CPOConfig(**common, loss_type="simpo", cpo_alpha=0.0, beta=s.beta, simpo_gamma=s.gamma,
                         max_length=self.cfg.sequence.max_len, disable_dropout=True)
