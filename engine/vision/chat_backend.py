"""Chat with a vision-language model (a VLM folder, a VLM run or its adapter): text plus images.

    engine chat runs/shapes --image photo.png -m "What colour is the shape?"
    engine chat runs/shapes            # then: /image photo.png, and ask

Messages may carry an `images` list of paths (ChatSession.attach_image puts them on the next
user turn); the processor renders them as the model's image tokens and turns the files into
pixels. Decoding is the same token-by-token loop as the text HF backend: the first step sees
the pixels, later steps reuse the KV cache.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

from engine.chat.backends import register_backend, require_memory


def _vlm_folder_of(ref: str) -> bool:
    """Whether `ref` is (or trains) a VLM, decided from small files only."""
    from engine.vision import is_vlm_folder

    p = Path(ref)
    if not p.is_dir():
        return False
    if is_vlm_folder(p):
        return True
    for sub in ("adapter", "merged", "final", "."):  # final/: a full fine-tune's model
        folder = p / sub
        if (folder / "processor_config.json").is_file() or (folder / "preprocessor_config.json").is_file():
            return True
    return False


def multimodal_messages(messages: list[dict]) -> list[dict]:
    """Chat messages (content text, optional `images`) -> content parts, each image where the turn starts."""
    out = []
    for m in messages:
        parts = [{"type": "image"} for _ in m.get("images", ())]
        parts.append({"type": "text", "text": m["content"]})
        out.append({"role": m["role"], "content": parts})
    return out


@register_backend("vlm")
class VisionChatBackend:
    """A VLM through transformers: fp32 on the CPU (or the GPU), with its adapter when the ref is a run."""

    accepts_images = True

    @staticmethod
    def matches(ref: str) -> bool:
        return _vlm_folder_of(ref)

    def __init__(self, ref: str, template: str | None = None):
        import torch
        from transformers import AutoModelForImageTextToText
        from transformers.utils import logging as hf_logging

        from engine.chat.backends.hf import _base_and_adapter
        from engine.models.param_count import param_count
        from engine.vision.processor import load_processor

        hf_logging.disable_progress_bar()
        base, adapter, tok_dir = _base_and_adapter(ref)
        require_memory(ref, param_count(base) * 4 / 2**30 + 0.5, "Close other programs, or chat with a smaller model.")
        self.processor = load_processor(tok_dir, template)
        self.tokenizer = self.processor.tokenizer
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        model = AutoModelForImageTextToText.from_pretrained(str(base), dtype=torch.float32)
        if adapter is not None:
            from engine.train.methods.saved import load_adapter

            model = load_adapter(model, adapter)
        self.model = model.to(self.device).eval()
        gen_eos = getattr(self.model.generation_config, "eos_token_id", None)
        stops = {self.tokenizer.eos_token_id} | set(gen_eos if isinstance(gen_eos, list) else [gen_eos] if gen_eos is not None else [])
        self.stop_ids = {s for s in stops if s is not None}
        self.label = f"vlm:{Path(ref).name or ref}" + ("+adapter" if adapter is not None else "")
        self._pixels: dict = {}  # prompt ids -> the pixel tensors that go with them

    def prompt_inputs(self, messages: list[dict]) -> tuple[list[int], dict]:
        """The prompt's token ids and the tensors that go with them (pixel values; none without images)."""
        from engine.vision.data import open_image

        text = self.processor.apply_chat_template(multimodal_messages(messages), tokenize=False, add_generation_prompt=True)
        images = [open_image(p) for m in messages for p in m.get("images", ())]
        enc = self.processor(text=[text], images=[images] if images else None, add_special_tokens=False, return_tensors="pt")
        return enc["input_ids"][0].tolist(), {k: v for k, v in enc.items() if k not in ("input_ids", "attention_mask")}

    def prompt_ids(self, messages: list[dict]) -> list[int]:
        ids, inputs = self.prompt_inputs(messages)
        self._pixels = {tuple(ids): inputs}  # for stream(ids, params) right after (ChatSession)
        return ids

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def stream(self, ids: list[int], params, inputs: dict | None = None) -> Iterator[str]:
        """Generate after `ids`; `inputs` are prompt_inputs' tensors (None: those of the last prompt_ids call).
        Ids alone cannot name the pixels: two prompts with other images but the same text tokenise alike."""
        import torch

        from engine.chat.decoding import IncrementalText, sample_next

        if inputs is None:
            inputs = self._pixels.get(tuple(ids), {})
        extra = {k: v.to(self.device) for k, v in inputs.items()}
        gen = torch.Generator().manual_seed(params.seed)
        text = IncrementalText(lambda toks: self.tokenizer.decode(toks, skip_special_tokens=True))
        past, inp, seen = None, torch.tensor([ids], device=self.device), list(ids)
        self.last_count = 0
        with torch.no_grad():
            for _ in range(params.max_tokens):
                # one unpadded prompt: the mask is all ones, given on the first step only. Qwen2-VL derives a decode
                # step's M-RoPE positions from a mask when it gets one, as if the mask were the new tokens alone
                mask = torch.ones(1, len(seen), dtype=torch.long, device=self.device) if past is None else None
                out = self.model(input_ids=inp, attention_mask=mask, past_key_values=past, use_cache=True, **extra)
                extra = {}  # the pixels are in the cache now
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
