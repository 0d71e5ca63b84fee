"""The `unsloth` backend: Unsloth's patched models and kernels (NVIDIA/AMD/Intel GPUs only).

Unsloth refuses to import without a GPU, so `available` checks CUDA first and
imports lazily; on CPU `auto` falls back to `hf` and says so in the first event.
"""

from __future__ import annotations

from engine.train.backends import register_backend

# Unsloth wants explicit module names; 'all-linear' means these for Llama-like models.
ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@register_backend("unsloth")
class UnslothBackend:
    @staticmethod
    def available(device: str) -> tuple[bool, str]:
        if device != "cuda":
            return False, f"unsloth needs a CUDA/ROCm GPU, this run is on {device}"
        try:
            import unsloth  # noqa: F401
        except Exception as e:  # ImportError, or unsloth's own GPU checks
            return False, f"unsloth does not import ({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}); pip install 'edgetune[unsloth]'"
        return True, "CUDA GPU and unsloth present"

    def load(self, cfg, model_dir, choice, gradient_checkpointing: bool, head: str = "causal-lm"):
        from unsloth import FastLanguageModel

        from engine.data.render import ensure_chat_template
        from engine.train.model_setup import linear_layer_names, resolve_targets

        from engine.train.methods import resolved_load_in

        model, tokenizer = FastLanguageModel.from_pretrained(  # choose_backend refused methods unsloth lacks
            model_name=str(model_dir), max_seq_length=cfg.sequence.max_len, dtype=choice.dtype,
            load_in_4bit=resolved_load_in(cfg) == "4bit",
        )
        ensure_chat_template(tokenizer, cfg.model.chat_template)
        targets = resolve_targets(model, cfg.lora.target_modules)
        if targets == "all-linear":
            present = set(linear_layer_names(model))
            targets = [t for t in ALL_LINEAR if t in present]
        model = FastLanguageModel.get_peft_model(
            model, r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout,
            target_modules=targets, use_rslora=cfg.lora.rslora, use_dora=cfg.method == "dora",
            use_gradient_checkpointing="unsloth" if gradient_checkpointing else False, random_state=cfg.seed,
        )
        return model, tokenizer
