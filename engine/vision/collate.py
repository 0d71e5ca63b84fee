"""Batches for a VLM: the processor turns each batch's images into pixels (too large to store
per record) and tokenises the rendered text; labels keep only the answer spans found by encode.py."""

from __future__ import annotations

from engine.errors import DataError

IGNORE = -100


class VisionCollator:
    """rows from VisionEncoder -> input_ids, attention_mask, labels, pixel_values (+ the family's extras)."""

    def __init__(self, processor):
        self.processor = processor

    def __call__(self, rows: list[dict]) -> dict:
        import torch

        from engine.vision.data import open_image

        images = [[open_image(p) for p in r["images"]] for r in rows]
        enc = self.processor(text=[r["text"] for r in rows], images=images if any(images) else None, padding=True,
                             padding_side="right", add_special_tokens=False, return_tensors="pt")
        labels = torch.full_like(enc["input_ids"], IGNORE)
        for i, r in enumerate(rows):
            if int(enc["attention_mask"][i].sum()) != r["length"]:
                raise DataError(f"the processor gave {int(enc['attention_mask'][i].sum())} tokens for a record encoded as "
                                f"{r['length']}: its images changed on disk since the data was read? Restart the run.")
            for start, end in r["spans"]:
                labels[i, start:end] = enc["input_ids"][i, start:end]
        out = dict(enc)
        out["labels"] = labels
        return out
