"""The module that keeps an input-embedding table on the host (engine/train/host_embedding.py decides when)."""

from __future__ import annotations

import torch.nn as nn


class HostEmbedding(nn.Module):
    """An embedding module whose table lives on the host; a drop-in for the model's input embedding."""

    def __init__(self, inner):
        super().__init__()
        inner.to("cpu")
        object.__setattr__(self, "_inner", inner)  # not a submodule: no parameters, no state, no .to()

    @property
    def weight(self):
        return self.__dict__["_inner"].weight

    def __getattr__(self, name):  # num_embeddings, padding_idx, embed_scale, ... of the wrapped module
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.__dict__["_inner"], name)

    def forward(self, input_ids):
        inner = self.__dict__["_inner"]
        rows = inner(input_ids.to(inner.weight.device))
        return rows.to(input_ids.device, non_blocking=True)

    def _apply(self, fn, recurse=True):  # model.to(...) / .cuda() / .half(): the table stays where it is
        return self

    def host_numel(self) -> int:
        return self.__dict__["_inner"].weight.numel()
