"""What the preference recipes (dpo, orpo, simpo, kto, rm) share: metric names and adapter dtype.

The step event's `metrics` keys are the same for every pairwise stage, so the terminal, the
app and the tests read one set of names whatever TRL trainer produced them.
"""

from __future__ import annotations

from contextlib import contextmanager

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


@contextmanager
def no_reference_copy(model):
    """Build TRL's trainer so that its reference is 'the policy with its adapter disabled'.

    Given a model that is already a PeftModel, TRL's DPO/KTO trainers add a frozen copy of the
    adapter named 'ref' and run the reference pass through it. A freshly initialised adapter is the
    identity, so that copy computes exactly the start model: deleting it once the trainer is built
    makes TRL fall back to disabling the adapter, the same reference without the copy's memory and
    compute. Methods that allow one trainable adapter only (AdaLoRA) refuse the copy outright; it
    is skipped for them (their parameters are ParameterDict entries, which TRL's copy loop over
    '.default.' names does not touch).
    """
    add = getattr(model, "add_adapter", None)
    if add is None or not getattr(model, "peft_config", None):
        yield
        return

    def add_unless_refused(name, *args, **kwargs):
        try:
            return add(name, *args, **kwargs)
        except ValueError:
            if name != "ref":
                raise

    model.add_adapter = add_unless_refused
    try:
        yield
    finally:
        del model.add_adapter  # the instance attribute; the class method shows through again
        if "ref" in model.peft_config:
            model.delete_adapter("ref")
            model.set_adapter("default")
