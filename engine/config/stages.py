"""The training stages and their own config sections (dpo.*, kto.*, ...).

`stage` picks a recipe (engine/train/recipes registers one per name listed here). Each
preference stage has a section of its own knobs; a key of one stage's section set while
another stage is chosen is refused by the loader, naming the key. The help texts here are
the documentation of every knob (`engine config --fields` prints them).
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.config.option import opt

# stage -> one line: what it does and the data it needs (the CLI, the docs and the app show it)
STAGES = {
    "sft": "supervised fine-tuning on chats/instructions, or continued pre-training on raw text "
           "(data: alpaca, sharegpt, messages or text records)",
    "dpo": "Direct Preference Optimization: prefer the chosen answer over the rejected one, relative to the "
           "start model as reference (data: preference pairs prompt/chosen/rejected)",
    "orpo": "ORPO: SFT on the chosen conversation plus an odds-ratio preference term in one step, no reference "
            "model (data: preference pairs)",
    "simpo": "SimPO: length-normalised, reference-free preference loss with a target margin (data: preference pairs)",
    "kto": "KTO: learn from thumbs-up/thumbs-down labels on single answers, relative to the start model "
           "(data: prompt/completion/label records, or preference pairs)",
    "rm": "reward model: a scalar score head trained to rank the chosen answer above the rejected one; scores "
          "answers (`engine score`) and drives online RL (data: preference pairs)",
    "grpo": "GRPO online RL: sample rl.num_generations answers per prompt, score them with rl.rewards (functions, "
            "built-ins or an rm run) and favour those above their group's mean, a KL term keeping the start model "
            "near (data: prompts)",
    "rloo": "RLOO online RL: as grpo, with each answer's baseline the mean reward of the other answers to its "
            "prompt (data: prompts)",
}


DPO_LOSSES = ["sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot",
              "aot_unpaired", "apo_zero", "apo_down", "discopop", "sigmoid_norm"]


@dataclass
class DpoSettings:
    beta: float = opt(0.1, "How far the policy may move from the reference: higher keeps it closer (DPO paper: 0.1). "
                           "Lower values (0.05) let small data change greedy answers sooner.")
    loss_type: str = opt("sigmoid", "DPO loss as TRL names it: 'sigmoid' (the DPO paper), 'ipo', 'hinge' (SLiC), "
                                    "'robust' (noisy labels, with label_smoothing), 'apo_zero', ...", choices=DPO_LOSSES)
    label_smoothing: float = opt(0.0, "Probability that a pair's label is flipped (robust DPO, < 0.5) or EXO's epsilon.")
    precompute_ref: bool = opt(False, "Compute the reference log-probs of every pair once before training, so no "
                                      "reference forward runs during training (saves time and peak memory on 8-12 GB GPUs).")


@dataclass
class OrpoSettings:
    beta: float = opt(0.1, "Weight of the odds-ratio preference term next to the SFT loss on the chosen answer "
                           "(lambda in the ORPO paper, 0.1).")


@dataclass
class SimpoSettings:
    beta: float = opt(2.0, "Scale of the length-normalised reward (SimPO paper: 2.0-2.5).")
    gamma: float = opt(0.5, "Target reward margin between chosen and rejected, absolute (TRL's simpo_gamma). The "
                            "paper's gamma/beta ~ 0.5 means gamma ~ 1.0 at beta 2; 0.5 (TRL's default) is gentler.")


@dataclass
class KtoSettings:
    beta: float = opt(0.1, "How far the policy may move from the reference (KTO paper: 0.1).")
    desirable_weight: float = opt(1.0, "Loss weight of thumbs-up completions; with unbalanced data keep "
                                       "desirable_weight*n_desirable / (undesirable_weight*n_undesirable) in [1, 1.33].")
    undesirable_weight: float = opt(1.0, "Loss weight of thumbs-down completions.")
    precompute_ref: bool = opt(False, "Compute the reference log-probs once before training (no reference forward "
                                      "during training).")


@dataclass
class RmSettings:
    center_rewards: float = opt(0.01, "Weight of a penalty on the mean reward's square, which keeps scores centred "
                                      "near 0 so rewards from different runs compare (0 = off; TRL: 0.01).")


# section name -> the stage(s) it belongs to
SECTION_STAGE = {"dpo": "dpo", "orpo": "orpo", "simpo": "simpo", "kto": "kto", "rm": "rm", "rl": ("grpo", "rloo")}


def section_stages(section: str) -> tuple:
    """The stages a section belongs to (empty for a shared section such as optim)."""
    owner = SECTION_STAGE.get(section)
    return () if owner is None else (owner,) if isinstance(owner, str) else tuple(owner)
