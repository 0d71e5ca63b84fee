"""ONNX Runtime GenAI backend for folders written by `engine export onnx` (genai_config.json inside).

The decode loop is `engine.runtimes.onnx_genai.OnnxChatModel`'s, the one the exporter verifies
and times; this backend only renders the prompt with the shared chat template and maps the
sampling options onto it. The runtime (and onnxruntime-genai) is imported when a backend is
opened, so that `import engine.chat` stays light.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator, Optional

from engine.chat.backends import register_backend, require_memory, require_template
from engine.chat.template import render_prompt
from engine.errors import EdgetuneError


def _memory_fix(folder: Path) -> str:
    """What to do when the export does not fit: a smaller precision of the same source, if there is one."""
    info = json.loads((folder / "export.json").read_text(encoding="utf-8")) if (folder / "export.json").is_file() else {}
    fix = "Close other programs or use a machine with more memory"
    if info.get("precision") == "int4":
        return fix + "; int4 is already the smallest ONNX export, so a smaller model is the other way."
    return fix + (f", or export 4-bit weights, about a quarter of fp32's size: "
                  f"engine export onnx {info.get('source', 'MODEL')} --precision int4")


def _multimodal(ref: str) -> bool:
    """Whether the ONNX folder is a VLM export (genai_config has a vision model)."""
    try:
        return "vision" in json.loads((Path(ref) / "genai_config.json").read_text(encoding="utf-8"))["model"]
    except (OSError, ValueError, KeyError):
        return False


@register_backend("onnx")
class OnnxChatBackend:
    """An ONNX GenAI folder on the CPU: prompt ids and sampling as in the other backends."""

    @staticmethod
    def matches(ref: str) -> bool:
        return (Path(ref) / "genai_config.json").is_file() and not _multimodal(ref)

    def __init__(self, ref: str, template: Optional[str] = None):
        try:
            import onnxruntime_genai  # noqa: F401
        except ImportError:
            raise EdgetuneError("Chatting with an ONNX model needs onnxruntime-genai: pip install 'edgetune[onnx]'.") from None
        from engine.models.loading import tokenizer_from_dir
        from engine.runtimes.onnx_genai import OnnxChatModel, memory_needed_gb

        folder = Path(ref)
        require_memory(ref, memory_needed_gb(folder), _memory_fix(folder))
        self.model = OnnxChatModel(folder, provider="cpu")
        # The HF tokenizer files sit beside the graph: they carry the chat template and the special
        # tokens' text, so the prompt is rendered exactly as the hf and gguf backends render it.
        # It is then tokenised by onnxruntime-genai's own tokenizer, i.e. what the graph really sees.
        self.hf_tok = tokenizer_from_dir(folder, template)
        require_template(ref, self.hf_tok.chat_template)
        self.template = self.hf_tok.chat_template
        self.stop_ids = set(self.model.eos_ids) | ({self.hf_tok.eos_token_id} - {None})
        self.label = f"onnx:{folder.name}"
        self.last_count = 0

    def prompt_ids(self, messages: list[dict]) -> list[int]:
        return self.encode(render_prompt(self.template, messages, self.hf_tok.bos_token, self.hf_tok.eos_token))

    def encode(self, text: str) -> list[int]:
        """Token ids of `text` as the graph sees them: special tokens' text recognised, none added."""
        return self.model.encode(text)

    _inputs: dict = {}  # prompt ids -> onnxruntime-genai inputs (pixels) that go with them; a VLM export's only

    def stream(self, ids: list[int], params, inputs=None) -> Iterator[str]:
        """Generate after `ids`; `inputs` are a VLM export's prompt_inputs (None: those of the last prompt_ids call)."""
        if inputs is None:
            inputs = self._inputs.get(tuple(ids))
        self.last_count = 0
        try:
            yield from self.model.stream_ids(
                ids, params.max_tokens, temperature=params.temperature, top_p=params.top_p, top_k=params.top_k,
                repetition_penalty=params.repeat_penalty, seed=params.seed, stop_ids=self.stop_ids, inputs=inputs)
        finally:
            self.last_count = len(self.model.last.ids)


@register_backend("onnx-vlm")
class OnnxVisionChatBackend(OnnxChatBackend):
    """A VLM export (vision.onnx + embedding.onnx + decoder): text plus one image per conversation.

    onnxruntime-genai's multimodal processor does what the HF processor does: it expands the
    template's image placeholder into the model's image tokens and turns the file into pixels."""

    accepts_images = True

    @staticmethod
    def matches(ref: str) -> bool:
        return (Path(ref) / "genai_config.json").is_file() and _multimodal(ref)

    def prompt_inputs(self, messages: list[dict]) -> tuple[list[int], object]:
        """The prompt's ids (image tokens expanded) and onnxruntime-genai's inputs for them (pixels included)."""
        from engine.vision.chat_backend import multimodal_messages

        images = [p for m in messages for p in m.get("images", ())]
        prompt = render_prompt(self.template, multimodal_messages(messages), self.hf_tok.bos_token, self.hf_tok.eos_token)
        inputs = self.model.image_inputs(prompt, images)
        return [int(i) for i in inputs["input_ids"].as_numpy().reshape(-1)], inputs

    def prompt_ids(self, messages: list[dict]) -> list[int]:
        ids, inputs = self.prompt_inputs(messages)
        self._inputs = {tuple(ids): inputs}  # for stream(ids, params) right after (ChatSession)
        return ids
