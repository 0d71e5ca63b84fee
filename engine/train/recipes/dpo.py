"""`stage=dpo`: Direct Preference Optimization with TRL's DPOTrainer.

    engine train assets/presets/cpu_dpo.yaml          # starts from the quickstart SFT run

The policy starts from `model` (an SFT run's merged result, or any model) and is pushed to
give the chosen answer a higher log-probability ratio against the reference than the rejected
one. The reference is the start model: with LoRA/QLoRA the policy with its adapter disabled
(no second model in memory); with full/freeze fine-tuning TRL loads a frozen copy.
`dpo.precompute_ref` computes the reference log-probs once before training.

A vision-language model trains on image + text pairs (engine/vision/pairs.py): TRL's DPOTrainer
takes the model's processor, and the collator turns each batch's images into pixels.
"""

from __future__ import annotations

from engine.train.recipes import register_recipe
from engine.train.recipes.preference import PAIR_METRICS, PairRecipe


@register_recipe("dpo")
class DpoRecipe(PairRecipe):
    """DPO on preference pairs, reference = the start model."""

    metrics = PAIR_METRICS
    progress_metric = "reward_accuracy"
    trains_vlms = True  # image + text preference pairs (engine/vision/pairs.py)

    def build_data(self):
        if not self.vision:
            return super().build_data()
        from engine.vision.pairs import build_vision_pair_data

        return build_vision_pair_data(self.cfg, self.tokenizer)

    def trainer_kwargs(self) -> dict:
        if not self.vision:
            return {}
        from engine.vision.pairs import VisionPairCollator

        return {"data_collator": VisionPairCollator(self.tokenizer)}  # pixels per batch, [chosen; rejected]

    def shares_prefix(self) -> bool:
        return not self.vision  # a VLM's batch carries pixels the shared-prefix pass does not see

    def trainer_class(self) -> type:
        from engine.train.recipes.pretokenised import dpo_trainer

        return dpo_trainer()

    def trainer_config(self, common: dict):
        from trl import DPOConfig

        d = self.cfg.dpo
        return DPOConfig(**common, beta=d.beta, loss_type=[d.loss_type], label_smoothing=d.label_smoothing,
                         precompute_ref_log_probs=d.precompute_ref, max_length=None, disable_dropout=True,
                         trust_remote_code=self.cfg.model.trust_remote_code)
