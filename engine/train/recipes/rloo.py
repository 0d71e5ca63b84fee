"""`stage=rloo`: REINFORCE Leave-One-Out with TRL's RLOOTrainer.

    engine train assets/presets/cpu_grpo.yaml stage=rloo output_dir=runs/rloo

Each answer's baseline is the mean reward of the *other* answers to its prompt, an unbiased
estimate that needs no critic. The rest is the shared RL recipe (rl.py).
"""

from __future__ import annotations

from engine.train.recipes import register_recipe
from engine.train.recipes.rl import RlRecipe


@register_recipe("rloo")
class RlooRecipe(RlRecipe):
    """RLOO: leave-one-out baseline, PPO's clipped ratio, KL to the start model."""

    def trainer_class(self) -> type:
        from trl import RLOOTrainer

        return RLOOTrainer

    def trainer_config(self, common: dict):
        from trl import RLOOConfig

        return RLOOConfig(**self.rl_args(common))
