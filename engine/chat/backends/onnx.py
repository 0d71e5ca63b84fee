"""ONNX Runtime GenAI backend for folders written by `engine export onnx` (genai_config.json inside)."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Optional

from engine.chat.backends import register_backend
from engine.chat.template import render_prompt
from engine.errors import EdgetuneError


@register_backend("onnx")
class OnnxChatBackend:
    @staticmethod
    def matches(ref: str) -> bool:
        return (Path(ref) / "genai_config.json").is_file()

    def __init__(self, ref: str, template: Optional[str] = None):
        try:
            import onnxruntime_genai as og
        except ImportError:
            raise EdgetuneError("Chatting with an ONNX model needs onnxruntime-genai: pip install 'edgetune[onnx]'.") from None
        from engine.models.loading import tokenizer_from_dir

        self.og = og
        try:
            self.model = og.Model(str(ref))
        except Exception as e:
            raise EdgetuneError(f"onnxruntime-genai could not load '{ref}' ({e}).") from None
        # The HF tokenizer files sit beside the graph; they carry the chat template and special tokens.
        self.hf_tok = tokenizer_from_dir(ref, template)
        self.template = self.hf_tok.chat_template
        self.og_tok = og.Tokenizer(self.model)
        import json

        cfg = json.loads((Path(ref) / "genai_config.json").read_text())
        eos = cfg.get("model", {}).get("eos_token_id", self.hf_tok.eos_token_id)
        self.stop_ids = set(eos if isinstance(eos, list) else [eos]) | {self.hf_tok.eos_token_id}
        self.label = f"onnx:{Path(ref).name}"

    def prompt_ids(self, messages: list[dict]) -> list[int]:
        text = render_prompt(self.template, messages, self.hf_tok.bos_token, self.hf_tok.eos_token)
        return self.hf_tok(text, add_special_tokens=False)["input_ids"]

    def stream(self, ids: list[int], params) -> Iterator[str]:
        og = self.og
        gp = og.GeneratorParams(self.model)
        greedy = params.temperature <= 0
        options = dict(max_length=len(ids) + params.max_tokens, do_sample=not greedy,
                       repetition_penalty=params.repeat_penalty)
        if not greedy:
            options.update(temperature=params.temperature, top_k=params.top_k, top_p=params.top_p, random_seed=params.seed)
        gp.set_search_options(**options)
        gen = og.Generator(self.model, gp)
        gen.append_tokens([ids])
        stream = self.og_tok.create_stream()
        self.last_count = 0
        while not gen.is_done():
            gen.generate_next_token()
            tok = int(gen.get_next_tokens()[0])
            if tok in self.stop_ids:
                break
            self.last_count += 1
            piece = stream.decode(tok)
            if piece:
                yield piece
