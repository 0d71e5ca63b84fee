"""`stage=rm`: a reward model, TRL's RewardTrainer on a sequence-classification head.

The base's LM head is replaced by a one-output score head read at the last token; training
raises the score of the chosen answer above the rejected one (Bradley-Terry loss). With LoRA
the head is trained in full and saved with the adapter. The run is a scorer, not a chat
model: `engine score RUN --data pairs.jsonl` prints rewards, and the RL stage uses it as a
reward; `engine chat` and `engine export` refuse it.
"""

from __future__ import annotations

from engine.train.recipes import register_recipe
from engine.train.recipes.preference import PairRecipe


@register_recipe("rm")
class RewardModelRecipe(PairRecipe):
    """Bradley-Terry reward model on preference pairs."""

    layout = "scored"  # prompt + answer per row: the score head reads the whole sequence
    metrics = {"accuracy": "accuracy", "margin": "margin"}
    progress_metric = "accuracy"
    head = "sequence-classification"
    backends = ("hf",)  # Unsloth patches causal LMs only


    def trainer_class(self) -> type:
        from trl import RewardTrainer

        return RewardTrainer

    def trainer_config(self, common: dict):
        from trl import RewardConfig

        c = self.cfg.rm.center_rewards
        return RewardConfig(**common, center_rewards_coefficient=c or None, max_length=None, disable_dropout=True)
