"""Run an exported ONNX model with onnxruntime-genai: chat token by token.

This is what a chat backend imports. It needs only the export folder (genai_config.json,
model.onnx(.data), tokenizer files and the chat template, all written by `engine export
onnx`), not transformers or torch:

    from engine.runtimes.onnx_genai import OnnxChatModel

    model = OnnxChatModel("runs/quickstart/exports/onnx-int4")
    for piece in model.stream([{"role": "user", "content": "Who makes the Quillon Q7?"}]):
        print(piece, end="", flush=True)
    print(model.last.stop_reason, model.last.new_tokens, model.last.tokens_per_s)

The prompt is rendered with the model's own chat template (the one it was trained with,
saved next to the model), and generation stops at the model's end-of-turn token.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Sequence

from engine.errors import EdgetuneError


@dataclass
class Generation:
    """What one generation produced and how fast."""

    ids: list[int] = field(default_factory=list)  # new tokens, end-of-turn token excluded
    stop_reason: str = ""  # "eos" (end-of-turn token), "length" (max_new_tokens or window) or "stopped" (caller)
    prompt_tokens: int = 0
    prefill_s: float = 0.0  # prompt processing + first token
    decode_s: float = 0.0  # every token after the first

    @property
    def new_tokens(self) -> int:
        return len(self.ids) + (1 if self.stop_reason == "eos" else 0)

    @property
    def tokens_per_s(self) -> float:
        """Decode speed: tokens after the first, per second (prompt processing excluded)."""
        return (self.new_tokens - 1) / self.decode_s if self.new_tokens > 1 and self.decode_s > 0 else 0.0


# Measured with SmolLM2-135M int4 (0.1 GB of weights): OnnxChatModel alone holds 0.22 GB (libraries,
# arenas, weights and the copies onnxruntime prepacks), `engine chat` 0.6 GB at its peak, the rest
# being transformers and torch, imported for the chat backend's tokenizer and template.
WEIGHTS_FACTOR = 1.2
RUNTIME_OVERHEAD_GB = 0.5


def min_kv_capacity(genai_config: dict) -> int:
    """The smallest KV buffer (max_length) the graph runs with: its sliding window, if it has one.

    Sliding-window attention (Gemma 2/3) is built into the graph with a fixed local window, and
    onnxruntime's GroupQueryAttention refuses a shared KV buffer smaller than that window, even
    for a prompt of a few tokens.
    """
    return sliding_window_size(genai_config.get("model", {}).get("decoder", {}))


def sliding_window_size(decoder: dict) -> int:
    """The local attention window of genai_config.json's model.decoder section (0: no sliding window)."""
    return int((decoder.get("sliding_window") or {}).get("window_size") or 0)


def memory_needed_gb(folder: str | Path, tokens: int = 2048) -> float:
    """About how much RAM chatting with the export in `folder` takes on the CPU, in GB.

    The weights (onnxruntime reads the external data file into memory and prepacks some of
    them), the KV cache that onnxruntime-genai preallocates for a generation of `tokens`
    (prompt + answer, capped at the export's window) and an allowance for the libraries.
    """
    folder = Path(folder)
    weights = sum(f.stat().st_size for f in folder.iterdir() if f.name.endswith((".onnx", ".onnx.data")))
    config = json.loads((folder / "genai_config.json").read_text(encoding="utf-8"))
    decoder = config.get("model", {}).get("decoder", {})
    window = int(config.get("search", {}).get("max_length") or config.get("model", {}).get("context_length") or tokens)
    info_path = folder / "export.json"
    precision = json.loads(info_path.read_text(encoding="utf-8")).get("precision") if info_path.is_file() else None
    kv_bytes = 2 if precision == "fp16" else 4  # CPU exports keep the cache in fp32, even int4 ones
    # Folders from other tools may leave out a size: their KV cache then counts as nothing.
    head_size = decoder.get("head_size") or decoder.get("hidden_size", 0) // max(1, decoder.get("num_attention_heads", 1))
    kv_heads = decoder.get("num_key_value_heads") or decoder.get("num_attention_heads", 0)
    kv = 2 * decoder.get("num_hidden_layers", 0) * kv_heads * head_size * kv_bytes * max(min(tokens, window),
                                                                                         min_kv_capacity(config))
    return (WEIGHTS_FACTOR * weights + kv) / 2**30 + RUNTIME_OVERHEAD_GB


class OnnxChatModel:
    """An exported ONNX folder loaded with onnxruntime-genai, ready to chat.

    `provider` is the execution provider to run on: "cpu" (default; also runs CUDA/DirectML
    exports, slowly) or the export's own ("cuda", "dml") when that build of onnxruntime-genai
    is installed. `threads` caps onnxruntime's intra-op threads (default: onnxruntime's choice,
    one per physical core). Not thread-safe: use one instance per conversation thread.
    """

    def __init__(self, folder: str | Path, provider: str = "cpu", threads: Optional[int] = None):
        import onnxruntime_genai as og

        self.folder = Path(folder)
        config_path = self.folder / "genai_config.json"
        if not config_path.is_file():
            raise EdgetuneError(f"'{self.folder}' has no genai_config.json, so it is not an ONNX export of edgetune "
                                f"(create one with: engine export onnx MODEL --precision int4).")
        self.genai_config = json.loads(config_path.read_text(encoding="utf-8"))
        config = og.Config(str(self.folder))
        if threads:
            config.overlay(json.dumps({"model": {"decoder": {"session_options": {"intra_op_num_threads": int(threads)}}}}))
        config.clear_providers()  # the export names its own provider (cuda/dml); run where asked
        if provider != "cpu":
            config.append_provider(provider)
        try:
            self.model = og.Model(config)
        except Exception as e:  # onnxruntime-genai raises RuntimeError with its own message
            raise EdgetuneError(f"onnxruntime-genai cannot load '{self.folder}' on {provider}: {e}") from None
        self.tokenizer = og.Tokenizer(self.model)
        self.eos_ids = {int(i) for i in self.tokenizer.eos_token_ids}
        self.window = int(self.genai_config.get("search", {}).get("max_length")
                          or self.genai_config["model"].get("context_length") or 2048)
        self.min_capacity = min_kv_capacity(self.genai_config)
        self.last = Generation()
        # a VLM export (engine export onnx of a Gemma 3): vision.onnx + embedding.onnx before the decoder
        self.multimodal = "vision" in self.genai_config["model"]
        self._processor = None

    def image_inputs(self, prompt: str, images: Sequence[str | Path]):
        """onnxruntime-genai's inputs (ids, pixels) for a rendered `prompt` holding its image placeholders.

        The runtime (0.18) takes at most one image per prompt: it sizes the vision output for one
        image's tokens and hands the embedding graph a rank-2 feature tensor."""
        import onnxruntime_genai as og

        if not self.multimodal:
            raise EdgetuneError(f"{self.folder} is a text-only ONNX export; it cannot read images.")
        if len(images) > 1:
            raise EdgetuneError(f"This conversation holds {len(images)} images, but an ONNX Runtime GenAI VLM reads one "
                                f"image per prompt. Start a new conversation (/reset) for the next image, or chat with "
                                f"the run folder or its GGUF export, which take several.")
        if self._processor is None:
            self._processor = self.model.create_multimodal_processor()
        return self._processor(prompt, images=og.Images.open(*[str(p) for p in images]) if images else None)

    def render(self, messages: Sequence[dict], add_generation_prompt: bool = True) -> str:
        """The chat prompt for `messages` ([{"role": ..., "content": ...}]) with the model's template."""
        return self.tokenizer.apply_chat_template(json.dumps(list(messages)), add_generation_prompt=add_generation_prompt)

    def encode(self, text: str) -> list[int]:
        """Token ids of `text` (special tokens such as <|im_start|> are recognised, none are added)."""
        return [int(i) for i in self.tokenizer.encode(text)]

    def stream(self, messages: Sequence[dict], max_new_tokens: int = 256, temperature: float = 0.0,
               top_p: float = 1.0, top_k: int = 50, repetition_penalty: float = 1.0, seed: Optional[int] = None,
               should_stop: Optional[Callable[[], bool]] = None) -> Iterator[str]:
        """Yield the reply to `messages` as text pieces while it is generated.

        temperature 0 is greedy decoding. `should_stop` is polled after every token (e.g. a
        Stop button). Afterwards `self.last` holds the ids, stop reason and speed.
        """
        yield from self.stream_ids(self.encode(self.render(messages)), max_new_tokens, temperature=temperature,
                                   top_p=top_p, top_k=top_k, repetition_penalty=repetition_penalty, seed=seed,
                                   should_stop=should_stop)

    def stream_ids(self, prompt_ids: Sequence[int], max_new_tokens: int = 256, **options) -> Iterator[str]:
        """Like `stream`, for a prompt already rendered and tokenised (what the chat backend sends).

        `options` are `generate_ids`'s. Pieces hold only complete characters: the tokenizer
        stream holds back a token that ends inside a multi-byte character.
        """
        stream = self.tokenizer.create_stream()
        for token in self.generate_ids(prompt_ids, max_new_tokens, **options):
            piece = stream.decode(token)
            if piece:
                yield piece

    def reply(self, messages: Sequence[dict], **options) -> str:
        """The whole reply to `messages` as one string (same options as `stream`)."""
        return "".join(self.stream(messages, **options))

    def generate_ids(self, prompt_ids: Sequence[int], max_new_tokens: int, min_new_tokens: int = 0,
                     temperature: float = 0.0, top_p: float = 1.0, top_k: int = 50, repetition_penalty: float = 1.0,
                     seed: Optional[int] = None, stop_ids: Iterable[int] = (),
                     should_stop: Optional[Callable[[], bool]] = None, inputs=None) -> Iterator[int]:
        """Yield new token ids after `prompt_ids` (the end-of-turn token is not yielded).

        Generation ends at genai_config's eos ids or any of `stop_ids` (extra end-of-turn ids,
        e.g. a tokenizer's that the config lacks), after `max_new_tokens`, or at the export's
        window. `repetition_penalty` divides the logits of every token already in the sequence,
        prompt included (onnxruntime-genai's rule). `seed` fixes sampling (None: random each
        call). `min_new_tokens` forbids the end-of-turn token before that many tokens (for
        speed tests). `inputs` are image_inputs' (their ids must be `prompt_ids`): the pixels go
        through the vision graph with the prompt.
        """
        import numpy as np
        import onnxruntime_genai as og

        if len(prompt_ids) >= self.window:
            raise EdgetuneError(f"The prompt has {len(prompt_ids)} tokens but this export's window is {self.window} "
                                f"(search.max_length in {self.folder}/genai_config.json). Shorten the conversation.")
        max_length = min(self.window, len(prompt_ids) + max_new_tokens)
        budget = max_length - len(prompt_ids)  # new tokens; counted here, since the buffer may be larger
        max_length = max(max_length, self.min_capacity)
        params = og.GeneratorParams(self.model)
        options = dict(max_length=max_length, do_sample=temperature > 0, repetition_penalty=repetition_penalty)
        if temperature > 0:
            options.update(temperature=temperature, top_p=top_p, top_k=top_k)
            if seed is not None:
                options["random_seed"] = int(seed)
        if min_new_tokens:
            options["min_length"] = len(prompt_ids) + min(budget, min_new_tokens)
        params.set_search_options(**options)
        generator = og.Generator(self.model, params)
        stops = self.eos_ids | {int(i) for i in stop_ids}
        gen = self.last = Generation(prompt_tokens=len(prompt_ids))
        start = time.perf_counter()
        if inputs is not None:
            generator.set_inputs(inputs)
        else:
            generator.append_tokens(np.asarray(prompt_ids, dtype=np.int32))
        first_at = None
        while True:
            if generator.is_done():
                gen.stop_reason = gen.stop_reason or "length"
                break
            generator.generate_next_token()
            token = int(generator.get_next_tokens()[0])
            now = time.perf_counter()
            if first_at is None:
                first_at = now
                gen.prefill_s = now - start
            gen.decode_s = now - first_at
            if token in stops:
                gen.stop_reason = "eos"
                break
            gen.ids.append(token)
            yield token
            if should_stop is not None and should_stop():
                gen.stop_reason = "stopped"
                break
            if len(gen.ids) >= budget:
                gen.stop_reason = "length"
                break
