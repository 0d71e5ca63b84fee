"""The `hf` backend: transformers + peft + bitsandbytes. Works on CPU, CUDA and MPS."""

from __future__ import annotations

from engine.train.backends import register_backend


@register_backend("hf")
class HfBackend:
    @staticmethod
    def available(device: str) -> tuple[bool, str]:
        return True, "always available"

    def load(self, cfg, model_dir, choice, gradient_checkpointing: bool, head: str = "causal-lm"):
        """(trainable model, tokenizer); `head` is the recipe's: causal-lm or sequence-classification."""
        from engine.models.loading import tokenizer_from_dir
        from engine.train.model_setup import attach_trainable, load_base

        if head == "image-text-to-text":  # a VLM: its processor (images + tokenizer) is the processing class
            from engine.vision.processor import load_processor

            tokenizer = load_processor(model_dir, cfg.model.chat_template)
        else:
            tokenizer = tokenizer_from_dir(model_dir, cfg.model.chat_template, trust_remote_code=cfg.model.trust_remote_code)
        base = load_base(cfg, model_dir, choice, head=head, pad_token_id=getattr(tokenizer, "pad_token_id", None))
        model = attach_trainable(base, cfg, gradient_checkpointing, head=head)
        from engine.train.methods import get_method

        if get_method(cfg.method).autocast_inputs and choice.dtype_name in ("bf16", "fp16"):  # the trainer autocasts
            from engine.train.model_setup import skip_adapter_input_casts

            skip_adapter_input_casts(model)
        return model, tokenizer
