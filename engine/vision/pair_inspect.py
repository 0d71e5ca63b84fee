"""`engine data inspect` for image + text preference pairs (stage=dpo on a vision-language model).

    engine data inspect shapes/pairs.jsonl --model runs/tiny-vlm

The same report as image conversations (engine/vision/inspect.py), read with engine/vision/pairs.py:
images and their sizes, and with a VLM --model each pair encoded as training will (the longer of
its chosen and rejected sides, image tokens included, against max_len).
"""

from __future__ import annotations


def is_pair_file(path: str) -> bool:
    """Whether the file's first record is a preference pair (chosen + rejected) rather than a conversation."""
    from engine.data.readers import read_records

    for _, rec in read_records(path):
        return isinstance(rec, dict) and "chosen" in rec and "rejected" in rec
    return False


def inspect_vision_pairs(path: str, model_dir=None, max_len: int = 1024, system_prompt=None, on_error: str = "abort",
                         sample: int = 0):
    """VisionInspectReport of an image + text preference file (kind 'preference', trained by stage=dpo)."""
    from engine.vision.inspect import VisionInspectReport
    from engine.vision.pairs import encode_pair, load_vision_pairs

    loaded = load_vision_pairs(path, system_prompt, on_error)
    pairs = loaded.examples
    report = VisionInspectReport(path, records=len(pairs), skipped=loaded.skipped, kind="preference", stages=["dpo"])
    sizes = [s for p in pairs for s in p.sizes]
    report.images = len(sizes)
    if sizes:
        report.smallest = min(sizes, key=lambda s: s[0] * s[1])
        report.largest = max(sizes, key=lambda s: s[0] * s[1])
    pair = pairs[min(sample, len(pairs) - 1)]
    report.sample = {"location": pair.location, "messages": pair.messages, "chosen": pair.chosen, "rejected": pair.rejected,
                     "images": [{"path": p, "width": w, "height": h} for p, (w, h) in zip(pair.images, pair.sizes)]}
    if model_dir is None:
        return report
    from engine.vision.encode import VisionEncoder
    from engine.vision.processor import load_processor

    enc = VisionEncoder(load_processor(model_dir), 10**9)
    rows = [encode_pair(enc, p) for p in pairs]
    lengths = [max(r["chosen_len"], r["rejected_len"]) if r else 0 for r in rows]
    report.length_max, report.length_mean = max(lengths), sum(lengths) / len(lengths)
    report.over_max_len = sum(1 for n in lengths if n > max_len)
    n_images = sum(len(p.images) for p in pairs)
    image_id = enc.image_token_id
    if n_images:
        from engine.vision.data import open_image

        tokens = sum(enc.ids(r["chosen_text"], [open_image(i) for i in r["images"]]).count(image_id) for r in rows if r)
        report.image_tokens_per_image = tokens / n_images
    row = rows[pairs.index(pair)]
    if row:
        report.sample.update(text=row["chosen_text"], length=max(row["chosen_len"], row["rejected_len"]),
                             image_tokens=int(report.image_tokens_per_image or 0) * len(pair.images),
                             trained=[pair.chosen, pair.rejected])
    return report
