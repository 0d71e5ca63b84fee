"""Image + text records: the layouts people already have, read into one shape, images checked.

    {"messages": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What colour?"}]},
                  {"role": "assistant", "content": "Red."}], "images": ["img/0.png"]}           # OpenAI-style parts
    {"messages": [{"role": "user", "content": "<image>What colour?"}, {"role": "assistant", "content": "Red."}],
     "images": ["img/0.png"]}                                                                  # LLaMA-Factory, role/content
    {"conversations": [{"from": "human", "value": "<image>What colour?"}, {"from": "gpt", "value": "Red."}],
     "images": ["img/0.png"]}                                                                  # LLaMA-Factory ShareGPT
    {"image": "img/0.png", "messages": [...]}                                                  # one image

Image paths are relative to the data file. An image part may also name its file itself
({"type": "image", "image": "img/0.png"}). Every image is opened once here, so a missing or
unreadable file, a placeholder count that does not match the images, or an image too large to
process is reported with its file:line before training starts (data.on_error=skip drops the
record and counts it instead).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from engine.data.formats import RecordError
from engine.errors import DataError

PLACEHOLDER = "<image>"
# A side longer than this is almost surely a mistake (a scan at full resolution): processors
# shrink every image to a few hundred pixels anyway, and decoding one this large costs ~1 GB.
MAX_SIDE = 8192
ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "model": "assistant",
         "system": "system", "bot": "assistant"}


@dataclass
class VisionExample:
    """A conversation whose content is a list of parts ({"type": "image"} / {"type": "text"}), plus its images."""

    messages: list
    images: list  # absolute paths, in the order the image parts appear
    location: str = ""
    sizes: list = field(default_factory=list)  # (width, height) of each image


@dataclass
class VisionLoad:
    path: str
    examples: list = field(default_factory=list)
    skipped: list = field(default_factory=list)  # (location, reason)


def is_vision_record(rec: object) -> bool:
    """Whether a record carries images (an `images`/`image` field): it needs a vision-language model."""
    return isinstance(rec, dict) and ("images" in rec or "image" in rec)


def load_vision_examples(path: str, system_prompt: str | None = None, on_error: str = "abort") -> VisionLoad:
    """Read every image + text record of `path`; bad ones abort with file:line, or are skipped and counted."""
    return load_image_records(path, to_example, "image + text records", system_prompt, on_error)


def load_image_records(path: str, convert, what: str, system_prompt: str | None = None,
                       on_error: str = "abort") -> VisionLoad:
    """Every record of `path` through `convert(record, data folder, system_prompt)` (an object with `images`), its
    images checked; bad ones abort with file:line, or are skipped and counted. `what` names the records in errors."""
    from engine.data.readers import BadRecord, read_records

    report = VisionLoad(str(path))
    base = Path(path).expanduser().resolve().parent
    for location, rec in read_records(path):
        try:
            if isinstance(rec, BadRecord):
                raise RecordError(rec.message)
            item = convert(rec, base, system_prompt)
            item.location = location
            item.sizes = [check_image(p) for p in item.images]
        except RecordError as e:
            if on_error == "skip":
                report.skipped.append((location, str(e)))
                continue
            raise DataError(f"{location}: {e}. Fix the record, or set data.on_error=skip to drop bad records.") from None
        report.examples.append(item)
    if not report.examples:
        why = f" ({len(report.skipped)} bad record(s) skipped, first: {report.skipped[0][0]}: {report.skipped[0][1]})" if report.skipped else ""
        raise DataError(f"Data file '{path}' holds no usable {what}{why}.")
    return report


def to_example(rec: object, base: Path, system_prompt: str | None = None) -> VisionExample:
    """One record in any supported layout -> VisionExample (image files not opened yet)."""
    if not isinstance(rec, dict):
        raise RecordError(f"expected an object with fields, got {type(rec).__name__}")
    turns = rec.get("messages", rec.get("conversations"))
    if not isinstance(turns, list) or not turns:
        raise RecordError(f"expected a 'messages' (or 'conversations') list of turns next to the images; fields: {sorted(rec)}")
    listed = rec["images"] if "images" in rec else [rec["image"]] if "image" in rec else []  # text-only: general data
    if isinstance(listed, str):
        listed = [listed]
    if not isinstance(listed, list) or not all(isinstance(x, str) for x in listed):
        raise RecordError("'images' must be a list of image file paths (relative to the data file)")
    listed = list(listed)
    messages, named, placeholders = [], [], 0
    if system_prompt and not any(_role(t) == "system" for t in turns):
        messages.append({"role": "system", "content": [{"type": "text", "text": system_prompt}]})
    for turn in turns:
        role = _role(turn)
        parts = []
        for part in _parts(turn):
            if part["type"] == "image":
                placeholders += 1
                if part.get("image"):
                    named.append(part["image"])
                parts.append({"type": "image"})
            else:
                parts.append(part)
        messages.append({"role": role, "content": parts})
    files = listed + named if not listed or not named else listed
    if placeholders != len(files):
        raise RecordError(f"{placeholders} image placeholder(s) ({PLACEHOLDER} or {{\"type\": \"image\"}}) but "
                          f"{len(files)} image(s) listed; each image needs exactly one placeholder where it goes")
    if not any(m["role"] == "assistant" for m in messages):
        raise RecordError("no assistant turn: there is no answer to train on")
    return VisionExample(messages=messages, images=[str((base / f).resolve()) for f in files])


def _role(turn) -> str:
    if not isinstance(turn, dict):
        raise RecordError(f"a turn must be an object with role/content (or from/value), got {type(turn).__name__}")
    raw = turn.get("role", turn.get("from"))
    if raw not in ROLES:
        raise RecordError(f"unknown role {raw!r}; expected one of {', '.join(sorted(ROLES))}")
    return ROLES[raw]


def _parts(turn: dict) -> list[dict]:
    content = turn.get("content", turn.get("value"))
    if isinstance(content, str):
        return split_placeholders(content)
    if not isinstance(content, list):
        raise RecordError(f"a turn's content must be text or a list of parts, got {type(content).__name__}")
    parts = []
    for part in content:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "image":
            parts.append({"type": "image", "image": part.get("image") or part.get("path") or ""})
        elif kind == "text":
            parts.extend(split_placeholders(str(part.get("text", ""))))
        else:
            raise RecordError(f"unknown content part {part!r}; expected {{\"type\": \"image\"}} or {{\"type\": \"text\", \"text\": ...}}")
    return parts


def split_placeholders(text: str) -> list[dict]:
    """'<image>What is it?' -> [{"type": "image"}, {"type": "text", "text": "What is it?"}]."""
    parts = []
    for i, piece in enumerate(text.split(PLACEHOLDER)):
        if i:
            parts.append({"type": "image"})
        if piece:
            parts.append({"type": "text", "text": piece})
    return parts


def check_image(path: str) -> tuple[int, int]:
    """(width, height) of a readable image; RecordError naming the file and the problem otherwise."""
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not p.is_file():
        raise RecordError(f"image file '{p}' not found")
    try:
        with Image.open(p) as img:
            width, height = img.size
            if max(width, height) > MAX_SIDE:
                raise RecordError(f"image '{p}' is {width}x{height}; the largest side allowed is {MAX_SIDE} pixels. "
                                  f"Shrink it (the model sees it at a few hundred pixels anyway)")
            img.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, Image.DecompressionBombError) as e:
        raise RecordError(f"image '{p}' cannot be read ({type(e).__name__}: {e})") from None
    return width, height


def refuse_images_for_text_model(path: str, model: str, model_dir=None) -> None:
    """DataError when a text-only model (or a VLM of a family not trained here) is given image records:
    their images would be silently dropped."""
    from engine.data.readers import read_records

    p = Path(path).expanduser()
    if not p.is_file():
        return
    for location, rec in read_records(p):
        if is_vision_record(rec):
            from engine.vision import read_config

            config = read_config(model_dir) if model_dir else {}
            if "vision_config" in config:
                from engine.vision.families import family_for

                family_for(config)  # names the unsupported family and the supported ones
            raise DataError(f"{location}: this record has images, but model '{model}' reads text only. Train a "
                            f"vision-language model on it (e.g. a SmolVLM folder; python -m engine.vision.tiny_vlm builds a "
                            f"small one), or remove the images/image fields.")
        return


def open_image(path: str):
    """The image as RGB (processors expect three channels)."""
    from PIL import Image

    with Image.open(path) as img:
        return img.convert("RGB")
