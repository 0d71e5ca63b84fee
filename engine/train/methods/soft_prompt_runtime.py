"""Use a soft-prompt model (prompt tuning, P-tuning, prefix tuning) like any causal LM.

peft's prompt-learning models prepend their virtual tokens on every forward call: right for a
whole sequence, wrong for token-by-token decoding with a KV cache (the prompt would go in again
at every step), and prompt/P-tuning return logits for the virtual positions too. `PromptedLM`
puts the soft prompt in once, at the first call, and returns logits aligned with `input_ids`,
so chat, serve and eval treat the run like any other model.
"""

from __future__ import annotations

import torch
import torch.nn as nn


class PromptedLM(nn.Module):
    """A peft prompt-learning model behind the plain causal-LM call chat/eval use."""

    def __init__(self, peft_model):
        super().__init__()
        self.peft = peft_model
        self.kind = str(peft_model.peft_config[peft_model.active_adapter].peft_type).split(".")[-1]

    @property
    def base(self):
        return self.peft.get_base_model()

    @property
    def config(self):
        return self.base.config

    @property
    def generation_config(self):
        return self.base.generation_config

    def disable_adapter(self):
        """The base model without the soft prompt (a context manager, as peft's)."""
        return self.peft.disable_adapter()

    def forward(self, input_ids, attention_mask=None, past_key_values=None, use_cache=False, **kwargs):
        if past_key_values is not None:  # decoding: the prompt is already in the cache
            return self.base(input_ids=input_ids, attention_mask=attention_mask, past_key_values=past_key_values,
                             use_cache=use_cache, **kwargs)
        n_batch = input_ids.shape[0]
        n_virtual = self.peft.peft_config[self.peft.active_adapter].num_virtual_tokens
        if attention_mask is not None:
            attention_mask = torch.cat([attention_mask.new_ones(n_batch, n_virtual), attention_mask], dim=1)
        if self.kind == "PREFIX_TUNING":
            prefix = self.peft.get_prompt(batch_size=n_batch)
            return self.base(input_ids=input_ids, attention_mask=attention_mask, past_key_values=prefix,
                             use_cache=True if use_cache else None, **kwargs)
        embeds = self.base.get_input_embeddings()(input_ids)
        prompts = self.peft.get_prompt(batch_size=n_batch).to(embeds.dtype)
        out = self.base(inputs_embeds=torch.cat([prompts, embeds], dim=1), attention_mask=attention_mask,
                        use_cache=use_cache, **kwargs)
        out.logits = out.logits[:, n_virtual:]
        return out


def is_soft_prompt(model) -> bool:
    return bool(getattr(model, "peft_config", None)) and getattr(model, "active_peft_config", None) is not None \
        and model.active_peft_config.is_prompt_learning
