"""`stage=grpo`: Group Relative Policy Optimization with TRL's GRPOTrainer.

    engine train assets/presets/cpu_grpo.yaml

Each answer's advantage is its reward minus the mean of its group (the `rl.num_generations`
answers to one prompt), divided by the group's spread (`rl.scale_rewards`). Everything else
(prompt data, rewards, KL reference, events) is the shared RL recipe (rl.py).
"""

from __future__ import annotations

from engine.train.recipes import register_recipe
from engine.train.recipes.rl import RlRecipe


@register_recipe("grpo")
class GrpoRecipe(RlRecipe):
    """GRPO: group-normalised advantages, PPO's clipped ratio, KL to the start model."""

    def trainer_class(self) -> type:
        from trl import GRPOTrainer

        return GRPOTrainer

    def trainer_config(self, common: dict):
        from trl import GRPOConfig

        r = self.cfg.rl
        return GRPOConfig(**self.rl_args(common), loss_type=r.loss_type, scale_rewards=r.scale_rewards)
