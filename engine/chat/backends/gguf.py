"""llama.cpp backend (llama-cpp-python) for .gguf files: what Ollama/LM Studio users will run."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator, Optional

from engine.chat.backends import register_backend, require_memory, require_template
from engine.chat.decoding import IncrementalText
from engine.chat.template import render_prompt
from engine.data.chat_templates import resolve_chat_template
from engine.errors import EdgetuneError


@register_backend("gguf")
class GgufChatBackend:
    @staticmethod
    def matches(ref: str) -> bool:
        return str(ref).lower().endswith(".gguf")

    def __init__(self, ref: str, template: Optional[str] = None, n_ctx: int = 2048):
        try:
            from engine.runtimes.llama import load_llama
        except ImportError:
            raise EdgetuneError("Chatting with a .gguf needs llama-cpp-python: pip install 'edgetune[gguf]'.") from None
        path = Path(ref)
        if not path.is_file():
            raise EdgetuneError(f"GGUF file '{ref}' not found.")
        # llama.cpp maps the file and adds a KV cache and compute buffers: file + ~10% + 0.3 GB.
        require_memory(ref, path.stat().st_size * 1.1 / 2**30 + 0.3,
                       "Close other programs, or export a smaller type (engine export gguf RUN --quant q4_k_m).")
        try:
            self.llm = load_llama(path, n_ctx=n_ctx, verbose=False, logits_all=False)
        except EdgetuneError:  # a truncated or foreign file, named as such
            raise
        except Exception as e:
            raise EdgetuneError(f"llama.cpp could not load '{ref}' ({e}). Is it a complete GGUF of a supported architecture, and is there enough memory?") from None
        meta = self.llm.metadata
        if template:
            self.template = resolve_chat_template(template)
        else:
            self.template = meta.get("tokenizer.chat_template")
        require_template(ref, self.template, " in its metadata")
        self.bos_token = self._token_text(meta.get("tokenizer.ggml.bos_token_id"))
        self.eos_token = self._token_text(meta.get("tokenizer.ggml.eos_token_id"))
        stops = {self.llm.token_eos()}
        for key in ("tokenizer.ggml.eot_token_id", "tokenizer.ggml.eos_token_id"):
            if meta.get(key) is not None:
                stops.add(int(meta[key]))
        self.stop_ids = stops
        self.label = f"gguf:{path.name}"
        # False: every answer starts from an empty KV cache (what `engine chat` and the export checks
        # do). `engine serve` sets True, as llama.cpp's servers do: the tokens a prompt shares with
        # the previous one (system prompt, earlier turns) keep their cached keys and values.
        self.keep_prefix = False

    def _token_text(self, tid) -> str:
        if tid is None:
            return ""
        return self.llm.detokenize([int(tid)], special=True).decode("utf-8", errors="replace")

    def prompt_ids(self, messages: list[dict]) -> list[int]:
        return self.encode(render_prompt(self.template, messages, self.bos_token, self.eos_token))

    def encode(self, text: str) -> list[int]:
        """Token ids of `text` as the prompt sees them: special tokens' text recognised, none added."""
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def stream(self, ids: list[int], params) -> Iterator[str]:
        if not self.keep_prefix:
            self.llm.reset()
        self.llm.set_seed(params.seed)
        text = IncrementalText(lambda toks: self.llm.detokenize(toks).decode("utf-8", errors="replace"))
        count = self.last_count = 0
        for tok in self.llm.generate(ids, top_k=params.top_k, top_p=params.top_p, temp=params.temperature,
                                     repeat_penalty=params.repeat_penalty, reset=True):
            if tok in self.stop_ids or count >= params.max_tokens:
                break
            count = self.last_count = count + 1
            piece = text.push(tok)
            if piece:
                yield piece
