"""Soft prompts through peft: trainable vectors in front of the input (prompt tuning, P-tuning) or in
front of every layer's keys and values (prefix tuning; P-tuning v2 = prefix tuning without the
reparametrisation MLP).

They change no weight of the model, so they cannot be folded into a GGUF or ONNX file: the run is
used through `engine chat`/`eval`/`serve` with the base model; to ship a file, train a LoRA-family
method. A prefix or prompt is prepended to every sequence: the activations grow by
prompt.num_virtual_tokens per sequence, and the shared-opening trick does not apply.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.train.methods import Export, Method, register_method

NO_FOLD = Export(merge=False, label="soft prompt, nothing to fold", why_not="a soft prompt is extra input vectors, not a change to any weight, so there is "
                                      "nothing to fold into the model file. Chat/eval/serve the run itself, or train "
                                      "a LoRA-family method (method=lora or qlora) to export.")
OPTIONS = ("prompt.num_virtual_tokens", "prompt.init_text")
ANY_BASE = ("none", "8bit", "4bit")  # the base is only read, never changed


def align_logits_with_input(model, n: int) -> None:
    """Drop the logits of the virtual positions, so they line up with `input_ids` as every trainer expects.

    Prompt tuning and P-tuning put n embeddings in front of the input, and peft returns logits for
    them too. Its own loss (labels passed to the model, as SFT does) already skips them; the
    preference and RL trainers instead score the logits position by position themselves, which the
    extra n positions would shift. The reference pass (adapter disabled) has no virtual positions
    and is left alone.
    """

    def hook(module, args, kwargs, output):
        ids = kwargs.get("input_ids", args[0] if args else None)
        logits = getattr(output, "logits", None)
        if ids is not None and logits is not None and logits.shape[1] == ids.shape[1] + n:
            output.logits = logits[:, n:]
        return output

    model.register_forward_hook(hook, with_kwargs=True)


DEFAULT_PREFIX_TEXT = ("You are a helpful assistant. Answer the question from what you know, briefly and "
                       "accurately, in plain words.")


def init_prefix_from_text(model, text: str, n: int) -> None:
    """Start P-tuning v2's per-layer prefixes as the base model's own keys and values of `text`.

    peft draws them from N(0, 1) otherwise: keys and values at a scale no real token has, which the
    attention of every layer then reads. On SmolLM2-135M that random start raised the held-out loss
    from 2.3 to 4.5 and training never recovered; from real activations (Li & Liang's "initialise
    with real words") the model starts out unchanged in kind, as if `text` were in front of every
    sequence, and learns from there. The text repeats until it fills n tokens.
    """
    import peft
    import torch
    from transformers import AutoTokenizer

    ids = AutoTokenizer.from_pretrained(model.get_base_model().name_or_path)(text, add_special_tokens=False)["input_ids"]
    if not ids:
        raise ValueError(f"prompt.init_text {text!r} has no tokens; give a sentence or leave it empty")
    ids = torch.tensor([(ids * (n // len(ids) + 1))[:n]], device=model.get_base_model().device)
    base, was_training = model.get_base_model(), model.training
    base.eval()
    try:
        with torch.no_grad(), model.disable_adapter():
            out = base(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=True)
        peft.initialize_kv_prefix_from_past_key_values(model, past_key_values=out.past_key_values, num_virtual_tokens=n)
    finally:
        base.train(was_training)


def kv_width(shape) -> int:
    """Width of one layer's keys (= values): what peft sizes a prefix with (grouped-query aware)."""
    return shape.num_kv_heads * shape.head_dim


@dataclass(frozen=True)
class SoftPrompt(Method):
    kind: str = "prompt"  # prompt | prefix | ptuning
    projection: bool = False

    def refusal(self, facts, cfg):
        if cfg.prompt.init_text and not self.inits_from_text:
            return (f"prompt.init_text initialises method=prompt and method=ptuning_v2 only; unset it for "
                    f"method={self.name}.")
        return None

    @property
    def inits_from_text(self) -> bool:
        return self.kind == "prompt" or (self.kind == "prefix" and not self.projection)

    def virtual_tokens(self, cfg) -> int:
        return cfg.prompt.num_virtual_tokens

    def attach(self, model, cfg, head):
        import peft

        from engine.train.model_setup import HEADS

        n, task = cfg.prompt.num_virtual_tokens, HEADS[head][1]
        if self.kind == "prompt":
            init = dict(prompt_tuning_init="TEXT", prompt_tuning_init_text=cfg.prompt.init_text,
                        tokenizer_name_or_path=model.name_or_path) if cfg.prompt.init_text else {}
            pcfg = peft.PromptTuningConfig(num_virtual_tokens=n, task_type=task, **init)
        elif self.kind == "prefix":
            pcfg = peft.PrefixTuningConfig(num_virtual_tokens=n, prefix_projection=self.projection, task_type=task)
        else:
            pcfg = peft.PromptEncoderConfig(num_virtual_tokens=n, encoder_reparameterization_type="MLP", task_type=task)
        wrapped = peft.get_peft_model(model, pcfg)
        if self.kind == "prefix" and not self.projection:
            init_prefix_from_text(wrapped, cfg.prompt.init_text or DEFAULT_PREFIX_TEXT, n)
        if self.kind != "prefix" and head == "causal-lm":
            align_logits_with_input(wrapped, n)
        return wrapped

    def trainable(self, shape, cfg):
        n, h = cfg.prompt.num_virtual_tokens, shape.hidden_size
        if self.kind == "prompt":
            return n * h
        if self.kind == "ptuning":  # embedding + MLP h -> h -> h -> h, with biases
            return n * h + 3 * (h * h + h)
        kv = kv_width(shape)
        out = shape.num_layers * 2 * kv  # keys and values of every layer
        if not self.projection:
            return n * out
        return n * kv + (kv * kv + kv) + (kv * out + out)  # embedding, then Linear-Tanh-Linear


register_method(SoftPrompt(
    "prompt", "soft-prompt", "Prompt tuning: trainable embeddings in front of the input; the model is untouched.",
    NO_FOLD, lr_factor=30.0, base_formats=ANY_BASE, prefix_ok=False, options=OPTIONS, kind="prompt"))
register_method(SoftPrompt(
    "ptuning", "soft-prompt", "P-tuning: prompt embeddings produced by a small trained MLP (reparametrised prompts).",
    NO_FOLD, lr_factor=10.0, base_formats=ANY_BASE, prefix_ok=False, options=OPTIONS[:1], kind="ptuning"))
register_method(SoftPrompt(
    "prefix", "soft-prompt", "Prefix tuning: trained keys/values in front of every layer's attention, produced by an MLP.",
    NO_FOLD, lr_factor=10.0, base_formats=ANY_BASE, prefix_ok=False, options=OPTIONS[:1], kind="prefix", projection=True))
register_method(SoftPrompt(
    "ptuning_v2", "soft-prompt", "P-tuning v2: deep prompts in every layer, i.e. prefix tuning without the MLP.",
    NO_FOLD, lr_factor=10.0, base_formats=ANY_BASE, prefix_ok=False, options=OPTIONS[:1], kind="prefix", projection=False))
