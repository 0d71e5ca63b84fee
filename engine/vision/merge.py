"""Merge a VLM run's LoRA into its base: the text decoder changes, the vision side is copied as is.

The same contract as engine/train/merge.py: merged in fp64/fp32, checked before anything is
written (merged logits == base+adapter logits within 1e-4 on sample prompts *with an image*,
and != the base's), written to a temp folder and renamed; the processor is saved beside it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from engine.errors import EdgetuneError

SAMPLE_PROMPTS = ["What is in this image?", "What colour is the shape?"]


def sample_image(size: int = 64):
    """A fixed test picture (a red square on grey), the same every time."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (size, size), (200, 200, 200))
    ImageDraw.Draw(img).rectangle([size // 4, size // 4, 3 * size // 4, 3 * size // 4], fill=(220, 30, 30))
    return img


def sample_batch(processor):
    """input_ids/attention_mask/pixels for the sample prompts, one image each."""
    texts = [processor.apply_chat_template([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": p}]}],
                                           tokenize=False, add_generation_prompt=True) for p in SAMPLE_PROMPTS]
    return processor(text=texts, images=[[sample_image()] for _ in texts], padding=True, add_special_tokens=False,
                     return_tensors="pt")


def merge_vlm_adapter(run_dir: Path, adapter: Path, base_dir: Path, cfg, out, dtype: str):
    """Merge, verify, write; returns engine.train.merge.MergeReport."""
    import torch
    from transformers import AutoModelForImageTextToText
    from transformers.utils import logging as hf_logging

    from engine.models.param_count import param_count
    from engine.train.merge import MergeReport, _out_dtype, merge_checked
    from engine.train.methods.saved import load_adapter
    from engine.vision.processor import load_processor

    hf_logging.disable_progress_bar()
    processor = load_processor(adapter, cfg.model.chat_template)
    work_dtype = torch.float64 if param_count(base_dir) < 2e9 else torch.float32
    model = AutoModelForImageTextToText.from_pretrained(str(base_dir), dtype=work_dtype)
    model = load_adapter(model, adapter)
    batch = sample_batch(processor)
    batch["pixel_values"] = batch["pixel_values"].to(work_dtype)
    merged_model, diff, base_diff = merge_checked(model, batch)
    final = Path(out) if out else run_dir / "merged"
    tmp = final.with_name(f".{final.name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        merged_model.to(_out_dtype(dtype, base_dir)).save_pretrained(str(tmp), safe_serialization=True)
        processor.save_pretrained(str(tmp))
        merged_model.generation_config.save_pretrained(str(tmp))
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if e.errno == 28:
            raise EdgetuneError(f"Disk full while writing {final}; nothing was changed. Free space and run engine merge again.") from None
        raise
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    return MergeReport(final, diff, base_diff)
