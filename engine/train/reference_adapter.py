"""The reference model of DPO, KTO, GRPO and RLOO under an adapter: the policy with its adapter disabled."""

from __future__ import annotations

from contextlib import contextmanager


@contextmanager
def no_reference_copy(model):
    """Build TRL's trainer so that its reference is 'the policy with its adapter disabled'.

    Given a model that is already a PeftModel, TRL's DPO/KTO/GRPO/RLOO trainers add a frozen copy of the
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
