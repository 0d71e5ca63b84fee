"""`stage=kto`: Kahneman-Tversky Optimization from thumbs-up/thumbs-down answers (TRL's KTOTrainer).

Takes unpaired records (prompt, completion, label) or preference pairs (each pair becomes a
desirable and an undesirable answer). The reference is the start model, as in DPO: with LoRA
the policy with its adapter disabled. `kto.desirable_weight`/`undesirable_weight` balance
unequal numbers of thumbs-up and thumbs-down answers.
"""

from __future__ import annotations

from engine.train.recipes import register_recipe
from engine.train.recipes.preference import PairRecipe


@register_recipe("kto")
class KtoRecipe(PairRecipe):
    """KTO on rated answers (or unpaired preference pairs), reference = the start model."""

    data_kinds = ("kto", "preference")
    layout = "rated"  # pairs are unpaired into a desirable and an undesirable answer
    metrics = {"rewards/chosen": "reward_chosen", "rewards/rejected": "reward_rejected",
               "rewards/margins": "reward_margin", "kl": "kl"}
    progress_metric = "reward_margin"

    def _resolve_auto(self) -> tuple[int, bool]:
        """The planner's batch, at least 2: KTO's KL term pairs each answer with another prompt of its batch."""
        bs, gc = super()._resolve_auto()
        return (max(2, bs) if self.cfg.optim.batch_size == "auto" else bs), gc

    def trainer_class(self) -> type:
        from engine.train.recipes.pretokenised import kto_trainer

        return kto_trainer()

    def trainer_config(self, common: dict):
        from trl import KTOConfig

        k = self.cfg.kto
        return KTOConfig(**common, beta=k.beta, desirable_weight=k.desirable_weight,
                         undesirable_weight=k.undesirable_weight, precompute_ref_log_probs=k.precompute_ref,
                         max_length=None, disable_dropout=True,
                         trust_remote_code=self.cfg.model.trust_remote_code)
