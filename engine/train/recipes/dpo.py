"""`stage=dpo`: Direct Preference Optimization with TRL's DPOTrainer.

    engine train assets/presets/cpu_dpo.yaml          # starts from the quickstart SFT run

The policy starts from `model` (an SFT run's merged result, or any model) and is pushed to
give the chosen answer a higher log-probability ratio against the reference than the rejected
one. The reference is the start model: with LoRA/QLoRA the policy with its adapter disabled
(no second model in memory); with full/freeze fine-tuning TRL loads a frozen copy.
`dpo.precompute_ref` computes the reference log-probs once before training.
"""

from __future__ import annotations

from engine.train.recipes import register_recipe
from engine.train.recipes.preference import PAIR_METRICS, PairRecipe


@register_recipe("dpo")
class DpoRecipe(PairRecipe):
    """DPO on preference pairs, reference = the start model."""

    metrics = PAIR_METRICS
    progress_metric = "reward_accuracy"


    def trainer_class(self) -> type:
        from engine.train.recipes.pretokenised import dpo_trainer

        return dpo_trainer()

    def trainer_config(self, common: dict):
        from trl import DPOConfig

        d = self.cfg.dpo
        return DPOConfig(**common, beta=d.beta, loss_type=[d.loss_type], label_smoothing=d.label_smoothing,
                         precompute_ref_log_probs=d.precompute_ref, max_length=None, disable_dropout=True,
                         trust_remote_code=self.cfg.model.trust_remote_code)
