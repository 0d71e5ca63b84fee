"""Load a VLM's processor (image processor + tokenizer + chat template) from a folder.

transformers 5 resolves an image processor to a torchvision class first and, without
torchvision installed, refuses even its pure-PIL twin. The engine does not need torchvision
(the PIL classes do the same resizing and normalising), so when AutoProcessor refuses for that
reason the processor is assembled from the folder's own JSON with the PIL image processor.
A processor that also takes videos (Qwen2-VL's) has no PIL video processor to assemble: it is
built images-only (`images_only`), which is all edgetune trains and chats with.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

from engine.errors import ModelSourceError


def load_processor(folder: str | Path, chat_template: str | None = None):
    """The folder's processor, with a pad token (and `chat_template` replacing its template when given)."""
    from transformers import AutoProcessor

    folder = Path(folder)
    try:
        processor = AutoProcessor.from_pretrained(str(folder))
    except (ValueError, ImportError, OSError) as e:
        # torchvision missing; or an images-only folder (edgetune's tiny Qwen2-VL) without the video processor's file
        # ("Qwen2VLVideoProcessor requires the Torchvision library": any case)
        if "torchvision" not in str(e).lower() and "video processor" not in str(e):
            first = next((line for line in str(e).splitlines() if line.strip()), type(e).__name__)
            raise ModelSourceError(f"Cannot load the image processor of {folder}: {first}") from None
        processor = _assemble_with_pil(folder)
    if chat_template:
        from engine.data.chat_templates import resolve_chat_template

        processor.chat_template = resolve_chat_template(chat_template)
    tok = processor.tokenizer
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return processor


def _read(folder: Path, name: str) -> dict:
    path = folder / name
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _assemble_with_pil(folder: Path):
    import transformers
    from transformers import AutoTokenizer

    proc_cfg, pre_cfg = _read(folder, "processor_config.json"), _read(folder, "preprocessor_config.json")
    image_cfg = dict(proc_cfg.pop("image_processor", None) or pre_cfg)
    processor_name = proc_cfg.pop("processor_class", None) or image_cfg.get("processor_class")
    image_name = str(image_cfg.pop("image_processor_type", "")).removesuffix("Fast")
    image_cfg.pop("processor_class", None)
    if not processor_name or not image_name:
        raise ModelSourceError(f"{folder} has no processor_config.json / preprocessor_config.json naming its processor: "
                               f"is it a vision-language model folder?")
    family = _family_of(image_name)
    try:
        module = importlib.import_module(f"transformers.models.{family}.image_processing_pil_{family}")
        image_cls = getattr(module, f"{image_name}Pil")
    except (ImportError, AttributeError):
        raise ModelSourceError(f"{folder}: its image processor {image_name} needs torchvision here; "
                               f"pip install torchvision") from None
    image_processor = image_cls(**image_cfg)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    for attribute in ("video_processor", "feature_extractor", "audio_tokenizer"):
        proc_cfg.pop(attribute, None)
    template = (folder / "chat_template.jinja")
    kwargs = {k: v for k, v in proc_cfg.items() if not k.startswith("_")}
    if template.is_file():
        kwargs["chat_template"] = template.read_text(encoding="utf-8")
    elif "chat_template" in _read(folder, "chat_template.json"):
        kwargs["chat_template"] = _read(folder, "chat_template.json")["chat_template"]
    return images_only(getattr(transformers, processor_name))(image_processor=image_processor, tokenizer=tokenizer, **kwargs)


def images_only(processor_cls):
    """`processor_cls`, or (when it also wants a video processor) a subclass of the same name without one.

    Video processors need torchvision in transformers 5; edgetune trains and chats with images only.
    The subclass keeps the name, so save_pretrained writes the original processor_class."""
    if "video_processor" not in processor_cls.get_attributes():
        return processor_cls

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        # the base __init__ passes (image, tokenizer, video) on positionally: ProcessorMixin keeps the attributes
        # this class names (image_processor, tokenizer), so the missing video processor is dropped
        processor_cls.__init__(self, image_processor=image_processor, tokenizer=tokenizer, video_processor=None,
                               chat_template=chat_template, **kwargs)

    return type(processor_cls.__name__, (processor_cls,), {"__init__": __init__, "__module__": __name__,
                                                           "__doc__": f"{processor_cls.__name__} for images only."})


def _family_of(image_processor_name: str) -> str:
    """'Idefics3ImageProcessor' -> 'idefics3' (the transformers.models sub-package)."""
    from transformers.models.auto.image_processing_auto import IMAGE_PROCESSOR_MAPPING_NAMES

    for family, names in IMAGE_PROCESSOR_MAPPING_NAMES.items():
        flat = names.values() if isinstance(names, dict) else (names if isinstance(names, (tuple, list)) else [names])
        if any(n and str(n).removesuffix("Fast").removesuffix("Pil") == image_processor_name for n in flat):
            return family.replace("-", "_")
    return image_processor_name.removesuffix("ImageProcessor").lower()
