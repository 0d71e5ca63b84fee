"""Image + text preference pairs for stage=dpo on a vision-language model: read, checked, encoded, batched.

    {"prompt": "<image>What colour is the shape?", "chosen": "red", "rejected": "blue", "images": ["img/0.png"]}
    {"prompt": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What colour?"}]}],
     "chosen": [{"role": "assistant", "content": "red"}], "rejected": [...], "images": ["img/0.png"]}   # TRL's VLM layout
    {"conversations": [{"from": "human", "value": "<image>What colour?"}], "chosen": {"from": "gpt", "value": "red"},
     "rejected": {"from": "gpt", "value": "blue"}, "images": ["img/0.png"]}                         # LLaMA-Factory

Every pair layout engine/data/formats.py reads (PreferenceFormat), plus `images` (or `image`): paths
relative to the data file, each opened and checked once with file:line errors as in data.py. The
images go where the prompt's `<image>` placeholders (or image parts) are; a prompt without any
gets them at the start of its first user turn (TRL's convention).

Rows are encoded as encode.py does for SFT (lengths from rendered prefixes, a pair longer than
sequence.max_len dropped whole: cutting it would split image tokens from their pixels), and the
collator lays a batch out as TRL's DPOTrainer expects: the chosen rows, then the rejected rows,
each with its images, and a completion_mask over the answer tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from engine.data.formats import RecordError
from engine.errors import DataError
from engine.vision.data import PLACEHOLDER, VisionLoad, split_placeholders


@dataclass
class VisionPair:
    messages: list  # the prompt, content as parts ({"type": "image"} / {"type": "text"})
    chosen: str
    rejected: str
    images: list  # absolute paths, in placeholder order
    location: str = ""
    sizes: list = field(default_factory=list)


def _flatten(content):
    """OpenAI-style parts -> text with `<image>` where each image part was (the preference reader wants text)."""
    if not isinstance(content, list):
        return content
    out = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "image":
            out.append(PLACEHOLDER)
        elif kind == "text":
            out.append(str(part.get("text", "")))
        else:
            raise RecordError(f"unknown content part {part!r}; expected {{\"type\": \"image\"}} or {{\"type\": \"text\", \"text\": ...}}")
    return "".join(out)


def _flatten_turns(value):
    if isinstance(value, dict) and ("content" in value or "value" in value):
        key = "content" if "content" in value else "value"
        return {**value, key: _flatten(value[key])}
    if isinstance(value, list):
        return [_flatten_turns(v) if isinstance(v, dict) else v for v in value]
    return value


def to_pair(rec: object, base: Path, system_prompt: str | None = None) -> VisionPair:
    """One preference record with images -> VisionPair (image files not opened yet)."""
    from engine.data.formats import FORMATS

    if not isinstance(rec, dict):
        raise RecordError(f"expected an object with fields, got {type(rec).__name__}")
    listed = rec.get("images", rec.get("image", []))
    listed = [listed] if isinstance(listed, str) else listed
    if not isinstance(listed, list) or not all(isinstance(x, str) for x in listed):
        raise RecordError("'images' must be a list of image file paths (relative to the data file)")
    text_rec = {k: _flatten_turns(v) for k, v in rec.items() if k not in ("images", "image")}
    fmt = FORMATS["preference"]
    if not fmt.detect(text_rec, {}):
        raise RecordError(f"expected a preference pair (chosen + rejected, and a prompt) next to the images; fields: "
                          f"{sorted(rec)}. Image conversations (messages/conversations with one answer) train with stage=sft")
    ex = fmt.convert(text_rec, {}, system_prompt)
    messages = [{"role": m["role"], "content": split_placeholders(m["content"])} for m in ex.messages]
    placeholders = sum(1 for m in messages for p in m["content"] if p["type"] == "image")
    if placeholders == 0 and listed:
        first = next(m for m in messages if m["role"] == "user")
        first["content"] = [{"type": "image"} for _ in listed] + first["content"]
    elif placeholders != len(listed):
        raise RecordError(f"{placeholders} image placeholder(s) ({PLACEHOLDER} or {{\"type\": \"image\"}}) in the prompt but "
                          f"{len(listed)} image(s) listed; each image needs one placeholder where it goes (or none at all: "
                          f"then they all open the first user turn)")
    if PLACEHOLDER in ex.chosen or PLACEHOLDER in ex.rejected:
        raise RecordError(f"an answer holds {PLACEHOLDER}; images belong in the prompt")
    return VisionPair(messages, ex.chosen, ex.rejected, [str((base / f).resolve()) for f in listed])


def load_vision_pairs(path: str, system_prompt: str | None = None, on_error: str = "abort") -> VisionLoad:
    """Every preference pair of `path` with its images checked; bad ones abort with file:line, or are skipped."""
    from engine.vision.data import load_image_records

    return load_image_records(path, to_pair, "image + text preference pairs", system_prompt, on_error)


def _with_answer(messages: list, answer: str) -> list:
    return messages + [{"role": "assistant", "content": [{"type": "text", "text": answer}]}]


def encode_pair(enc, pair: VisionPair) -> dict | None:
    """The row of one pair (texts, images, prompt and answer lengths), or None when a side exceeds max_len."""
    from engine.vision.data import open_image

    images = [open_image(p) for p in pair.images]
    prompt_len = len(enc.ids(enc.render(pair.messages, generation_prompt=True), images))
    row = {"images": list(pair.images), "prompt_len": prompt_len}
    for side, answer in (("chosen", pair.chosen), ("rejected", pair.rejected)):
        text = enc.render(_with_answer(pair.messages, answer))
        length = len(enc.ids(text, images))
        if length > enc.max_len or length <= prompt_len:
            return None
        row[f"{side}_text"], row[f"{side}_len"] = text, length
    return row


def build_vision_pair_data(cfg, processor):
    """RunData (engine/train/data_build.py) of image + text preference pairs for stage=dpo on a VLM."""
    from datasets import Dataset

    from engine.data.dataset import split_eval
    from engine.errors import ConfigError
    from engine.train.data_build import RunData
    from engine.vision.encode import VisionEncoder

    d = cfg.data
    if cfg.dpo.precompute_ref:
        raise ConfigError("dpo.precompute_ref=true is not available for vision-language models (TRL runs the reference "
                          "on each batch's images); set dpo.precompute_ref=false. With LoRA the reference costs no memory.")
    if not d.path:
        raise DataError("No training data: set data=<file> with image + text preference pairs (see engine/vision/pairs.py).")
    loaded = load_vision_pairs(d.path, d.system_prompt, d.on_error)
    train_ex, eval_ex = split_eval(loaded.examples, 0.0 if d.eval_path else d.eval_split, cfg.seed)
    if d.eval_path:
        eval_ex = load_vision_pairs(d.eval_path, d.system_prompt, d.on_error).examples
    enc = VisionEncoder(processor, cfg.sequence.max_len)

    def encode(pairs):
        rows = [encode_pair(enc, p) for p in pairs]
        return [r for r in rows if r is not None], sum(1 for r in rows if r is None)

    train, dropped = encode(train_ex)
    if not train:
        raise DataError(f"{d.path}: every pair is longer than sequence.max_len={cfg.sequence.max_len} with its image "
                        f"tokens (or has an empty answer); raise sequence.max_len.")
    evals = encode(eval_ex)[0] if eval_ex else None
    trained = sum(r["chosen_len"] + r["rejected_len"] - 2 * r["prompt_len"] for r in train)
    return RunData(train=Dataset.from_list(train), eval=Dataset.from_list(evals) if evals else None, kind="preference",
                   truncated=0, dropped=dropped, skipped=len(loaded.skipped), trained_tokens=trained)


class VisionPairCollator:
    """Rows from build_vision_pair_data -> TRL DPOTrainer's batch: [chosen rows; rejected rows], right-padded, each
    with its pixels, and completion_mask over the answer tokens."""

    def __init__(self, processor):
        self.processor = processor

    def __call__(self, rows: list[dict]) -> dict:
        import torch

        from engine.vision.data import open_image

        images = [[open_image(p) for p in r["images"]] for r in rows] * 2
        texts = [r["chosen_text"] for r in rows] + [r["rejected_text"] for r in rows]
        enc = self.processor(text=texts, images=images if any(images) else None, padding=True, padding_side="right",
                             add_special_tokens=False, return_tensors="pt")
        mask = torch.zeros_like(enc["input_ids"])
        ends = [r["chosen_len"] for r in rows] + [r["rejected_len"] for r in rows]
        for i, (row, end) in enumerate(zip(rows * 2, ends)):
            if int(enc["attention_mask"][i].sum()) != end:
                raise DataError(f"the processor gave {int(enc['attention_mask'][i].sum())} tokens for a pair side encoded "
                                f"as {end}: its images changed on disk since the data was read? Restart the run.")
            mask[i, row["prompt_len"]:end] = 1
        out = dict(enc)
        out["completion_mask"] = mask
        return out
