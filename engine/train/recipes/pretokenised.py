"""TRL preference trainers that take the rows engine/data already tokenised.

TRL's trainers tokenise prompt/chosen/rejected text themselves; edgetune renders and masks
records once, with the model's chat template, its own truncation rules and file:line errors
(engine/data/pairs.py), and hands the trainers token ids. These subclasses change only that
step: the dataset passes through (DPO, KTO) or each row is laid out as the older experimental
trainers' collator expects (ORPO, CPO/SimPO). The loss code is TRL's, untouched.
"""

from __future__ import annotations

from functools import lru_cache

IGNORE = -100


@lru_cache(maxsize=None)
def dpo_trainer() -> type:
    from trl import DPOTrainer

    class PretokenisedDPOTrainer(DPOTrainer):
        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            return dataset  # prompt_ids / chosen_ids / rejected_ids already

    return PretokenisedDPOTrainer


@lru_cache(maxsize=None)
def kto_trainer() -> type:
    from trl import KTOTrainer

    class PretokenisedKTOTrainer(KTOTrainer):
        def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
            # prompt_ids / completion_ids / label already; only TRL's KL pairing is added: each completion is
            # matched with another prompt of its batch, rotating by one (as KTOTrainer does itself).
            if self.calculate_KL:
                def add_kl(rows):
                    rows["KL_completion_ids"] = [rows["completion_ids"][-1]] + rows["completion_ids"][:-1]
                    return rows

                dataset = dataset.map(add_kl, batched=True, batch_size=args.per_device_train_batch_size)
            return dataset

    return PretokenisedKTOTrainer


def concatenated_row(feature: dict) -> dict:
    """A pre-tokenised pair in the layout of TRL's experimental ORPO/CPO collator (labels mask the prompt)."""
    prompt = list(feature["prompt_ids"])
    out = {"prompt_input_ids": prompt, "prompt_attention_mask": [1] * len(prompt)}
    for side in ("chosen", "rejected"):
        ids = prompt + list(feature[f"{side}_ids"])
        out[f"{side}_input_ids"] = ids
        out[f"{side}_attention_mask"] = [1] * len(ids)
        out[f"{side}_labels"] = [IGNORE] * len(prompt) + list(feature[f"{side}_ids"])
    return out


@lru_cache(maxsize=None)
def experimental_pair_trainer(kind: str) -> type:
    """ORPOTrainer ('orpo') or CPOTrainer ('cpo', SimPO with loss_type='simpo') on pre-tokenised pairs."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "experimental" notice: the pinned TRL range is tested below
        if kind == "orpo":
            from trl.experimental.orpo import ORPOTrainer as Base
        else:
            from trl.experimental.cpo import CPOTrainer as Base

    class PretokenisedPairTrainer(Base):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.data_collator = _with_token_count(self.data_collator, self.processing_class.pad_token_id)

        def tokenize_row(self, feature, model=None):
            return concatenated_row(feature)

    PretokenisedPairTrainer.__name__ = f"Pretokenised{Base.__name__}"
    return PretokenisedPairTrainer


def _with_token_count(collate, pad_id: int):
    """Add `input_ids`/`attention_mask` (both answers, stacked) to an ORPO/CPO batch so the Trainer can count
    trained tokens as it does for every other stage; the loss reads only the chosen_*/rejected_* keys."""
    import torch

    def wrapped(features):
        batch = collate(features)
        sides = [batch["chosen_input_ids"], batch["rejected_input_ids"]]
        masks = [batch["chosen_attention_mask"], batch["rejected_attention_mask"]]
        width = max(t.shape[1] for t in sides)
        pad = lambda t, v: torch.nn.functional.pad(t, (0, width - t.shape[1]), value=v)  # noqa: E731
        batch["input_ids"] = torch.cat([pad(t, pad_id) for t in sides])
        batch["attention_mask"] = torch.cat([pad(m, 0) for m in masks])
        return batch

    return wrapped
