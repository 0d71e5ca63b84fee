"""Gemma 3 (text part). Gemma 2's (1 + weight) norms, plus q/k norms, local/global rope bases,
five sliding layers to one global, and an embedding that may be padded past the tokenizer
(llama.cpp wants exactly one row per token, so the extra rows are cut)."""

from __future__ import annotations

import gguf

from exporters.gguf.archs.gemma2 import GemmaBase
from exporters.gguf.registry import UnsupportedArchitecture, register_architecture


@register_architecture("Gemma3ForCausalLM", "Gemma3ForConditionalGeneration")
class Gemma3Architecture(GemmaBase):
    gguf_arch = gguf.MODEL_ARCH.GEMMA3
    swa_every = 6
    n_vocab_tokens = None  # set by the converter from the tokenizer, to trim padded embeddings

    def check(self) -> None:
        super().check()
        if self.hp("attn_logit_softcapping"):
            raise UnsupportedArchitecture("Gemma 3 with attn_logit_softcapping is not supported by llama.cpp.")

    def skip(self, name: str) -> bool:
        # The multimodal checkpoint also holds a vision tower and projector: text only here.
        if name.startswith(("vision_tower.", "multi_modal_projector.", "model.vision_tower.", "model.multi_modal_projector.")):
            return True
        return super().skip(name)

    def gguf_name(self, name: str) -> str:
        return super().gguf_name(name.replace("language_model.model.", "model.").replace("model.language_model.", "model."))

    def transform(self, name, tensor):
        if name.endswith("embed_tokens.weight") and self.n_vocab_tokens and tensor.shape[0] > self.n_vocab_tokens:
            tensor = tensor[: self.n_vocab_tokens]
        yield from super().transform(name, tensor)

    def write_hparams(self, w) -> None:
        super().write_hparams(w)
        local = self.rope("sliding_attention")
        if local.get("rope_theta") is not None:
            w.add_rope_freq_base_swa(float(local["rope_theta"]))
        elif self.hp("rope_local_base_freq") is not None:
            w.add_rope_freq_base_swa(float(self.hp("rope_local_base_freq")))
        if self.hp("final_logit_softcapping"):
            w.add_final_logit_softcapping(float(self.hp("final_logit_softcapping")))
        self.write_sliding_window(w)
