"""Shared-prefix forward: the tokens every sample of a batch starts with are computed once.

Chat data repeats its opening in every sample: the system prompt and the user-turn header
(SmolLM2's template adds a 20-token default system prompt, about 40% of each quickstart
sample). In a causal decoder the hidden state at position t depends only on tokens 0..t,
so a batch's common prefix gives the same hidden states, keys and values in every row.
`install` wraps the backbone's forward: the prefix runs once (batch 1), its keys and
values are broadcast to the batch as a KV cache, and only the rest of each sample runs
through the layers. The hidden states returned are the full forward's (the prefix rows are
broadcast), so the loss, TRL's fused LM head and the gradients are the same; autograd sums
the prefix's gradient over the batch through the broadcast.

It applies only where it is exact and cheaper: a padded batch (right padding, attention
mask covering the prefix in every row), a common prefix of at least MIN_PREFIX tokens, no
KV cache, position ids or embeddings passed in, and no gradient checkpointing (which
drops the cache inside each layer). LoRA dropout on the prefix then draws one mask for the
batch instead of one per row. Model types are listed in SUPPORTED, each checked by
tests/engine/test_shared_prefix.py against the plain forward (loss and every gradient).

The same wrapper runs a right-padded batch's rows in length groups when that saves enough
padding (engine/train/length_groups.py): DPO's short chosen answers then stop being padded to
their rejected twins' length. Groups need no KV cache, so they also apply under gradient
checkpointing.
"""

from __future__ import annotations

SUPPORTED = {"llama", "qwen2", "qwen3"}  # model_type -> tested; others run the plain forward
MIN_PREFIX = 8  # shorter prefixes save less than the second pass costs


def common_prefix_len(input_ids, attention_mask) -> int:
    """Tokens every row starts with (all real tokens), leaving at least one token per row to run."""
    same = (input_ids == input_ids[:1]).all(0)
    if attention_mask is not None:
        same = same & attention_mask.bool().all(0)
    return min(int(same.int().cumprod(0).sum()), input_ids.shape[1] - 1)


def backbone_of(model):
    """The decoder stack (e.g. LlamaModel) under a PEFT wrapper and the causal-LM head."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return getattr(inner, "base_model", inner)


def install(model) -> bool:
    """Wrap the backbone's forward of `model` (once); False when its model type is not supported."""
    backbone = backbone_of(model)
    if getattr(backbone.config, "model_type", None) not in SUPPORTED:
        return False
    if getattr(backbone, "_edgetune_shared_prefix", False):
        return True
    original = backbone.forward

    def forward(input_ids=None, attention_mask=None, position_ids=None, past_key_values=None, inputs_embeds=None,
                use_cache=None, **kwargs):
        plan = None
        if (input_ids is not None and input_ids.dim() == 2 and input_ids.shape[0] > 1 and inputs_embeds is None
                and position_ids is None and past_key_values is None and not use_cache
                and not any(v is not None for v in kwargs.values())):  # output_attentions=None etc. come along
            plan = _plan(backbone, input_ids, attention_mask)
        if plan is None:
            return original(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                            past_key_values=past_key_values, inputs_embeds=inputs_embeds, use_cache=use_cache, **kwargs)
        n, groups = plan
        if n:
            backbone.shared_prefix_calls = getattr(backbone, "shared_prefix_calls", 0) + 1
        if groups:
            backbone.length_group_calls = getattr(backbone, "length_group_calls", 0) + 1
        return _shared_forward(original, backbone.config, input_ids, attention_mask, n, groups)

    backbone.forward = forward
    backbone._edgetune_shared_prefix = True
    return True


def _checkpointing(backbone) -> bool:
    return any(getattr(layer, "gradient_checkpointing", False) for layer in backbone.modules())


def _plan(backbone, input_ids, attention_mask):
    """(shared prefix length or 0, length groups or None), or None when the plain forward is as good."""
    from engine.train import length_groups

    n = 0
    if not (backbone.training and _checkpointing(backbone)):
        n = common_prefix_len(input_ids, attention_mask)
        n = n if n >= MIN_PREFIX else 0
    lengths = length_groups.right_padded_lengths(attention_mask)
    groups = None
    if lengths is not None:
        groups = length_groups.plan([max(k - n, 1) for k in lengths], input_ids.shape[1] - n)
    return (n, groups) if n or groups else None


def _shared_forward(original, config, input_ids, attention_mask, n: int, groups):
    """The backbone's last hidden state: the prefix (n tokens) once, then each group of rows padded to its own length."""
    import torch
    from transformers import DynamicCache
    from transformers.modeling_outputs import BaseModelOutputWithPast

    rows, width = input_ids.shape
    groups = groups or [list(range(rows))]
    prefix = None
    if n:
        cache = DynamicCache(config=config)
        head = original(input_ids=input_ids[:1, :n], past_key_values=cache, use_cache=True)
        prefix = head.last_hidden_state, [(layer.keys, layer.values) for layer in cache.layers]
    mask = attention_mask if attention_mask is not None else torch.ones_like(input_ids)
    outs = []
    for rows_g in groups:
        idx = torch.tensor(rows_g, device=input_ids.device)
        end = int(mask[idx].sum(1).max()) if len(groups) > 1 else width
        end = max(end, n + 1)
        if prefix is None:
            out = original(input_ids=input_ids[idx, :end], attention_mask=attention_mask[idx, :end]
                           if attention_mask is not None else None, use_cache=False).last_hidden_state
        else:
            cache = DynamicCache(config=config)  # the prefix's keys/values, as if every row had computed them
            for i, (keys, values) in enumerate(prefix[1]):
                cache.update(keys.expand(len(rows_g), -1, -1, -1), values.expand(len(rows_g), -1, -1, -1), i)
            tail = original(input_ids=input_ids[idx, n:end], attention_mask=mask[idx, :end], past_key_values=cache,
                            use_cache=True).last_hidden_state
            out = torch.cat([prefix[0].expand(len(rows_g), -1, -1), tail], dim=1)
        outs.append(torch.nn.functional.pad(out, (0, 0, 0, width - end)))  # padding positions: zeros
    hidden = outs[0] if len(outs) == 1 else torch.cat(outs)[_inverse(groups, input_ids.device)]
    return BaseModelOutputWithPast(last_hidden_state=hidden)


def _inverse(groups, device):
    """Index putting the rows of the concatenated groups back in batch order."""
    import torch

    order = torch.tensor([r for g in groups for r in g], device=device)
    return torch.argsort(order)
