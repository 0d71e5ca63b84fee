"""`engine data inspect` for image + text records: images, their sizes and what they cost in tokens.

    engine data inspect shapes/train.jsonl --model runs/tiny-vlm

With a vision-language --model the records are rendered and masked exactly as training will
(engine/vision/encode.py), so the report gives each record's image tokens and total length;
with a text model it still checks every image (file:line errors) and reports their sizes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class VisionInspectReport:
    path: str
    records: int = 0
    skipped: list = field(default_factory=list)
    images: int = 0
    smallest: tuple = (0, 0)
    largest: tuple = (0, 0)
    image_tokens_per_image: float | None = None
    length_max: int | None = None
    length_mean: float | None = None
    over_max_len: int = 0
    sample: dict = field(default_factory=dict)  # text, images [{path, width, height}], answer, image_tokens
    kind: str = "chat"  # what the stage chooser asks: image conversations train with stage=sft
    stages: list = field(default_factory=lambda: ["sft"])

    def to_dict(self) -> dict:
        return asdict(self)


def inspect_vision(path: str, model_dir=None, max_len: int = 1024, system_prompt=None, on_error: str = "abort",
                   sample: int = 0) -> VisionInspectReport:
    """Report of an image + text file; `model_dir` (a VLM folder) adds token counts and the masked sample."""
    from engine.vision.data import load_vision_examples
    from engine.vision.pair_inspect import inspect_vision_pairs, is_pair_file

    if is_pair_file(path):  # image + text preference pairs: stage=dpo
        return inspect_vision_pairs(path, model_dir, max_len, system_prompt, on_error, sample)
    loaded = load_vision_examples(path, system_prompt, on_error)
    exs = loaded.examples
    report = VisionInspectReport(path, records=len(exs), skipped=loaded.skipped)
    sizes = [s for ex in exs for s in ex.sizes]
    report.images = len(sizes)
    if sizes:
        report.smallest = min(sizes, key=lambda s: s[0] * s[1])
        report.largest = max(sizes, key=lambda s: s[0] * s[1])
    ex = exs[min(sample, len(exs) - 1)]
    report.sample = {"location": ex.location, "images": [{"path": p, "width": w, "height": h} for p, (w, h) in zip(ex.images, ex.sizes)],
                     "messages": ex.messages}
    if model_dir is None:
        return report
    from engine.vision.encode import VisionEncoder
    from engine.vision.processor import load_processor

    enc = VisionEncoder(load_processor(model_dir), 10**9)
    rows = [enc.encode(e) for e in exs]
    lengths = [r["length"] for r in rows]
    report.length_max, report.length_mean = max(lengths), sum(lengths) / len(lengths)
    report.over_max_len = sum(1 for n in lengths if n > max_len)
    n_images = sum(len(r["images"]) for r in rows)
    report.image_tokens_per_image = sum(r["image_tokens"] for r in rows) / n_images if n_images else None
    row = rows[exs.index(ex)]
    from engine.vision.data import open_image

    ids = enc.ids(row["text"], [open_image(p) for p in row["images"]])
    tok = enc.processor.tokenizer
    report.sample.update(text=row["text"], image_tokens=row["image_tokens"], length=row["length"],
                         trained=[tok.decode(ids[s:e]) for s, e in row["spans"]])
    return report


def format_vision_report(r: VisionInspectReport) -> str:
    """Plain-text report for the terminal."""
    what = "preference pair(s), chosen | rejected trained by stage=dpo" if r.kind == "preference" else "record(s)"
    lines = [f"{r.path}: {r.records} image + text {what}, {r.images} image(s)"
             + (f", {len(r.skipped)} skipped (first: {r.skipped[0][0]}: {r.skipped[0][1]})" if r.skipped else "")]
    if r.images:
        lines.append(f"image sizes: smallest {r.smallest[0]}x{r.smallest[1]}, largest {r.largest[0]}x{r.largest[1]}")
    if r.image_tokens_per_image is not None:
        lines.append(f"image tokens: {r.image_tokens_per_image:.0f} per image; sequence length max {r.length_max}, "
                     f"mean {r.length_mean:.1f}; {r.over_max_len} record(s) over max_len (dropped in training)")
    else:
        lines.append("image tokens: pass --model <a vision-language model folder or run> to count them")
    s = r.sample
    lines.append(f"sample {s['location']}:")
    for im in s["images"]:
        lines.append(f"  image {im['path']} ({im['width']}x{im['height']})" + (f", {s['image_tokens'] // max(len(s['images']), 1)} image tokens" if "image_tokens" in s else ""))
    if "text" in s:
        lines.append("  rendered: " + s["text"].replace("\n", "\\n"))
        lines.append("  trained on: " + " | ".join(t.replace("\n", "\\n") for t in s["trained"]))
    return "\n".join(lines)
