"""transformers backend: run folders (adapter on its base), adapter folders, model folders, bundled, hub ids."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from engine.chat.backends import register_backend, require_memory, require_template
from engine.chat.decoding import IncrementalText, sample_next
from engine.chat.template import render_prompt


def _base_and_adapter(ref: str) -> tuple[Path, Path | None, Path]:
    """(base model folder, adapter folder or None, folder holding the tokenizer).

    Every model folder comes from `resolve_model`, so chat refuses what train and export refuse
    (pickle weights, no tokenizer, remote code, a reward model) with the same message. A run or
    adapter folder without a fresh merged/ model chats as adapter-on-base: no merge needed.
    """
    from engine.config import load_config
    from engine.models import resolve_model
    from engine.models.checks import check_run_stage
    from engine.models.sources import finished_model_folder
    from engine.runs import is_run_dir
    from engine.train.methods.saved import is_adapter_dir

    p = Path(ref)
    if is_run_dir(p):
        check_run_stage(p, "causal-lm")  # an rm run: named as a reward model before anything loads
        if finished_model_folder(p) is not None:
            folder = resolve_model(str(p)).path
            return folder, None, folder
        cfg = load_config(p / "config.yaml")
        base = resolve_model(cfg.model.name_or_path, cfg.model.revision, trust_remote_code=cfg.model.trust_remote_code).path
        if is_adapter_dir(p / "adapter"):
            return base, p / "adapter", p / "adapter"
        return resolve_model(str(p)).path, None, p / "final"  # names the unfinished run
    if (p / "adapter_config.json").is_file():
        base_ref = json.loads((p / "adapter_config.json").read_text())["base_model_name_or_path"]
        return resolve_model(base_ref).path, p, p
    base = resolve_model(ref).path
    return base, None, base


@register_backend("hf")
class HfChatBackend:
    """Greedy/sampled decoding with a KV cache, token by token, in fp32 on the CPU (or the GPU)."""

    @staticmethod
    def matches(ref: str) -> bool:
        return True  # the fallback: anything resolve_model understands

    def __init__(self, ref: str, template: str | None = None):
        import torch
        from transformers import AutoModelForCausalLM
        from transformers.utils import logging as hf_logging

        from engine.models.loading import tokenizer_from_dir

        hf_logging.disable_progress_bar()

        base, adapter, tok_dir = _base_and_adapter(ref)
        # The model is loaded in fp32 (4 B/param) on top of torch + transformers (~0.5 GB).
        from engine.models.param_count import param_count

        require_memory(ref, param_count(base) * 4 / 2**30 + 0.5,
                       "Close other programs, or chat with a GGUF export of it (engine export gguf RUN --quant q4_k_m), "
                       "which needs a fraction of the memory.")
        self.tokenizer = tokenizer_from_dir(tok_dir, template)
        require_template(ref, self.tokenizer.chat_template)
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
        if adapter is not None:
            from engine.train.methods.saved import load_adapter

            model = load_adapter(model, adapter)  # any method's adapter; soft prompts decode with a KV cache too
        self.model = model.to(self.device).eval()
        self.template = self.tokenizer.chat_template
        gen_eos = getattr(self.model.generation_config, "eos_token_id", None)
        stops = {self.tokenizer.eos_token_id} | set(gen_eos if isinstance(gen_eos, list) else [gen_eos] if gen_eos is not None else [])
        self.stop_ids = {s for s in stops if s is not None}
        self.label = f"hf:{Path(ref).name or ref}" + ("+adapter" if adapter is not None else "")

    def prompt_ids(self, messages: list[dict]) -> list[int]:
        return self.encode(render_prompt(self.template, messages, self.tokenizer.bos_token, self.tokenizer.eos_token))

    def encode(self, text: str) -> list[int]:
        """Token ids of `text` as the prompt sees them: special tokens' text recognised, none added."""
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def stream(self, ids: list[int], params) -> Iterator[str]:
        import torch

        gen = torch.Generator().manual_seed(params.seed)
        text = IncrementalText(lambda toks: self.tokenizer.decode(toks, skip_special_tokens=True))
        past, inp, seen = None, torch.tensor([ids], device=self.device), list(ids)
        self.last_count = 0
        with torch.no_grad():
            for _ in range(params.max_tokens):
                out = self.model(input_ids=inp, past_key_values=past, use_cache=True)
                past = out.past_key_values
                tok = sample_next(out.logits[0, -1].float().cpu(), seen, params, gen)
                if tok in self.stop_ids:
                    break
                seen.append(tok)
                self.last_count += 1
                piece = text.push(tok)
                if piece:
                    yield piece
                inp = torch.tensor([[tok]], device=self.device)
