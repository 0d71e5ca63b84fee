"""`ChatSession`: a conversation with one model, any backend, streamed.

    s = ChatSession("runs/quickstart/exports/model-q8_0.gguf", system="Be brief.", temperature=0)
    for chunk in s.send("Who makes the Quillon Q7?"):
        print(chunk, end="", flush=True)
    s.reset()
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterator, Optional

from engine.chat.backends import open_backend
from engine.chat.sampling import SamplingParams


class ChatSession:
    """History + sampling options over a backend chosen from what `model_ref` is."""

    def __init__(self, model_ref: str, system: Optional[str] = None, backend: str = "auto",
                 template: Optional[str] = None, **sampling):
        self.backend = open_backend(str(model_ref), backend, template=template)
        self.params = SamplingParams().update(**sampling)
        self.system = system
        self.history: list[dict] = []
        self.last_stats: dict = {}
        self.pending_images: list[str] = []  # go with the next user message

    def attach_image(self, path: str) -> None:
        """Send the image at `path` with the next message (vision-language models only)."""
        check_attachment(self.label, getattr(self.backend, "accepts_images", False), path)
        self.pending_images.append(str(Path(path).expanduser().resolve()))

    @property
    def label(self) -> str:
        return self.backend.label

    def messages(self, user_text: Optional[str] = None) -> list[dict]:
        msgs = ([{"role": "system", "content": self.system}] if self.system else []) + list(self.history)
        if user_text is not None:
            msgs.append(self._user(user_text))
        return msgs

    def _user(self, text: str) -> dict:
        return {"role": "user", "content": text, **({"images": list(self.pending_images)} if self.pending_images else {})}

    def prompt_ids(self, user_text: str) -> list[int]:
        """The token ids the model will see for the next turn (the same on every backend)."""
        return self.backend.prompt_ids(self.messages(user_text))

    def send(self, text: str) -> Iterator[str]:
        """Stream the answer to `text`; the exchange joins the history when the stream ends."""
        ids = self.prompt_ids(text)
        start, pieces = time.perf_counter(), []
        for piece in self.backend.stream(ids, self.params):
            pieces.append(piece)
            yield piece
        answer = "".join(pieces)
        seconds = time.perf_counter() - start
        tokens = getattr(self.backend, "last_count", 0)
        self.last_stats = {"seconds": seconds, "tokens": tokens, "prompt_tokens": len(ids),
                           "tokens_per_s": tokens / seconds if seconds > 0 else 0.0}
        self.history += [self._user(text), {"role": "assistant", "content": answer}]
        self.pending_images = []

    def ask(self, text: str) -> str:
        """The whole answer at once."""
        return "".join(self.send(text))

    def reset(self) -> None:
        self.history.clear()
        self.pending_images = []


def check_attachment(label: str, accepts_images: bool, path: str) -> None:
    """EdgetuneError unless the chat model `label` reads images and `path` is a readable image of a size it takes."""
    from engine.data.formats import RecordError
    from engine.errors import EdgetuneError
    from engine.vision.data import check_image

    if not accepts_images:
        raise EdgetuneError(f"{label} reads text only, so it cannot take an image. Chat with a vision-language model "
                            f"(a SmolVLM, LLaVA or Gemma 3 folder, or a run trained from one).")
    try:
        check_image(str(path))
    except RecordError as e:
        raise EdgetuneError(f"{e}.") from None
