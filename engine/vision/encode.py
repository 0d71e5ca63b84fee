"""Render image + text conversations with the model's processor and find the answer tokens.

Why prefix lengths instead of character offsets (engine/data/render.py's way for text): a VLM
processor rewrites each image placeholder into many image tokens before tokenising, so the
token offsets refer to a text the user never wrote. Images sit in the prompt turns only, so the
number of tokens before an answer is the length of the processed prompt prefix; each assistant
turn is the token range between its prompt prefix (rendered with add_generation_prompt) and the
conversation rendered through that turn. The end-of-turn token falls inside, so the model
learns to stop. Images are not kept here: the collator turns them into pixels per batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.errors import DataError


@dataclass
class VisionRows:
    rows: list = field(default_factory=list)  # {"text", "images", "spans", "length", "image_tokens"}
    dropped: int = 0  # longer than max_len: cutting would split an image's tokens from its pixels
    trained_tokens: int = 0


class VisionEncoder:
    """Turns VisionExamples into rows for the collator, for one processor and max length."""

    def __init__(self, processor, max_len: int):
        self.processor = processor
        self.max_len = max_len
        self.image_token = getattr(processor, "image_token", "<image>")
        # The token the images become (Gemma 3 writes <start_of_image> but expands it into soft tokens)
        expanded = [i for i in (getattr(processor, "image_token_ids", None) or []) if i is not None]
        self.image_token_id = expanded[0] if expanded else processor.tokenizer.convert_tokens_to_ids(self.image_token)
        if not getattr(processor, "chat_template", None):
            raise DataError("This vision-language model's processor has no chat template; set model.chat_template to one "
                            "that renders image parts (see engine/vision/tiny_vlm.py's CHAT_TEMPLATE for a ChatML one).")

    def render(self, messages: list, generation_prompt: bool = False) -> str:
        return self.processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)

    def ids(self, text: str, images: list) -> list[int]:
        """Token ids of `text` with its images expanded into image tokens (no special tokens added)."""
        n = text.count(self.image_token)
        enc = self.processor(text=[text], images=[images[:n]] if n else None, add_special_tokens=False)
        return list(enc["input_ids"][0])

    def encode(self, ex) -> dict | None:
        """The row for one example, or None when it does not fit in max_len."""
        from engine.vision.data import open_image

        images = [open_image(p) for p in ex.images]
        text = self.render(ex.messages)
        full = self.ids(text, images)
        if len(full) > self.max_len:
            return None
        spans = []
        for k, m in enumerate(ex.messages):
            if m["role"] != "assistant":
                continue
            start = len(self.ids(self.render(ex.messages[:k], generation_prompt=True), images))
            end = len(self.ids(self.render(ex.messages[: k + 1]), images))
            if end > start:
                spans.append([start, end])
        return {"text": text, "images": list(ex.images), "spans": spans, "length": len(full),
                "image_tokens": sum(1 for t in full if t == self.image_token_id)}

    def encode_all(self, examples: list) -> VisionRows:
        out = VisionRows()
        for ex in examples:
            row = self.encode(ex)
            if row is None:
                out.dropped += 1
                continue
            out.trained_tokens += sum(e - s for s, e in row["spans"])
            out.rows.append(row)
        return out


def build_vision_data(cfg, processor):
    """RunData (engine/train/data_build.py) of image + text records for a VLM run."""
    from datasets import Dataset

    from engine.data.dataset import split_eval
    from engine.train.data_build import RunData
    from engine.vision.data import load_vision_examples

    d = cfg.data
    if not d.path:
        raise DataError("No training data: set data=<file> with image + text records (see engine/vision/data.py).")
    loaded = load_vision_examples(d.path, d.system_prompt, d.on_error)
    train_ex, eval_ex = split_eval(loaded.examples, 0.0 if d.eval_path else d.eval_split, cfg.seed)
    if d.eval_path:
        eval_ex = load_vision_examples(d.eval_path, d.system_prompt, d.on_error).examples
    enc = VisionEncoder(processor, cfg.sequence.max_len)
    train = enc.encode_all(train_ex)
    if not train.rows:
        raise DataError(f"{d.path}: every record is longer than sequence.max_len={cfg.sequence.max_len} with its image "
                        f"tokens; raise sequence.max_len.")
    evals = enc.encode_all(eval_ex) if eval_ex else None
    return RunData(train=Dataset.from_list(train.rows), eval=Dataset.from_list(evals.rows) if evals and evals.rows else None,
                   kind="chat", truncated=0, dropped=train.dropped, skipped=len(loaded.skipped),
                   trained_tokens=train.trained_tokens)
