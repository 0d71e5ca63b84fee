"""What a vision-language model adds to a run's peak: its vision weights, the batch's pixels, and the vision
encoder's saved activations when something on the vision side trains. Pure arithmetic: no torch.

    spec.images          images per sample: the most any record of data.path has (1 without data)
    spec.vision_lora     lora.vision_tower=true: LoRA on the encoder's linears too
    spec.projector_trains  lora.train_projector=true

Image tokens need no term of their own: engine/vision/encode.py counts each record's image tokens
in its length and drops records longer than sequence.max_len, so the LM's `tokens` (batch x
max_len) already hold them. The vision encoder runs on patches (scale^2 per image token) of
every crop of every image in the micro-batch:
  frozen encoder and projector: nothing requires grad there, so nothing is saved for backward;
    only the pixels stay (the batch lives for the whole step)
  projector trains: it keeps its input (the pixel-shuffled patches, c x hidden per patch)
  encoder LoRA: each layer keeps what a ViT layer saves (vision_layer_bytes); with gradient
    checkpointing (Idefics3's encoder layers checkpoint like the LM's) only each layer's input,
    and the one layer recomputed runs after the LM's activations are freed, below the peak.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Optional

from engine.plan.estimate import ADAPTER_BYTES, GB, Part, _b, _dtype_name, term, unquantised_bytes
from engine.plan.run_spec import RunSpec

# The image processor hands the collator fp32 pixels and an int64 pixel mask per pixel position
# (Idefics3ImageProcessor: rgb x 4 B + 8 B); the model casts the pixels to its dtype in forward.
PIXEL_BYTES = 3 * 4
PIXEL_MASK_BYTES = 8


def images_in(rec) -> int:
    """Images of one record in any layout engine/vision/data.py reads (listed, or named in image parts)."""
    if not isinstance(rec, dict):
        return 0
    listed = rec.get("images", rec.get("image"))
    if isinstance(listed, str):
        return 1
    if isinstance(listed, list):
        return len(listed)
    return 0


@lru_cache(maxsize=8)
def _max_images(path: str, size: int, mtime: float) -> int:
    from engine.data.readers import read_records

    most = 0
    try:
        for _, rec in read_records(path):
            most = max(most, images_in(rec))
    except Exception:  # an unreadable file is the data checks' to report, with its file:line
        return 1
    return most


def images_per_record(path: Optional[str]) -> int:
    """The most images any record of the data file has (read once per file version); 1 without a file."""
    if not path:
        return 1
    p = Path(path).expanduser()
    try:
        stat = p.stat()
    except OSError:
        return 1
    return _max_images(str(p), stat.st_size, stat.st_mtime) if p.is_file() else 1


def vision_lora_params(spec_shape, cfg) -> int:
    """LoRA parameters on the vision encoder's linears (lora.vision_tower) and the projector trained in full
    (lora.train_projector): what a VLM adds to the method's trainable count."""
    vision = spec_shape.vision
    if vision is None:
        return 0
    n = 0
    if getattr(cfg.lora, "vision_tower", False):
        n += sum(cfg.lora.r * (i + o) for _, i, o in vision.linears_per_layer) * vision.num_layers
    if getattr(cfg.lora, "train_projector", False):
        n += vision.projector_params
    return n


def vision_fields(cfg, shape, lora_method: bool) -> dict:
    """RunSpec fields of a VLM run (empty for a text model); a stage that does not train VLMs is refused as
    `engine train` refuses it (engine/vision/stages.py)."""
    if shape.vision is None:
        return {}
    from engine.train.recipes import get_recipe
    from engine.vision.stages import check_stage_takes_vlm

    stage = getattr(cfg, "stage", "sft")
    check_stage_takes_vlm(stage, get_recipe(stage), cfg.model.name_or_path)
    return {"images": images_per_record(cfg.data.path),
            "vision_lora": lora_method and bool(getattr(cfg.lora, "vision_tower", False)),
            "projector_trains": lora_method and bool(getattr(cfg.lora, "train_projector", False))}


def vision_layer_bytes(spec: RunSpec) -> float:
    """Bytes one encoder layer saves per patch with LoRA on its linears (SigLIP layer, SDPA attention):
    two LayerNorms keep their input and their output (the next linears' input), attention keeps q, k, v and
    its output (out_proj's input), the MLP keeps fc1's output (GELU's input) and GELU's output (fc2's
    input); each adapter its r-wide fp32 A output, a 16-bit copy of its input under autocast, and
    LoRA dropout its output and mask."""
    v, c = spec.shape.vision, spec.compute_bytes
    h, i = v.hidden_size, v.intermediate_size
    extra = 0.0
    for _, n_in, _ in v.linears_per_layer:
        extra += ADAPTER_BYTES * spec.lora_r
        if spec.adapter_input_casts and ADAPTER_BYTES > c:
            extra += c * n_in
        if spec.lora_dropout > 0:
            extra += (ADAPTER_BYTES + 1) * n_in
    return c * (4 * h + 4 * h + 2 * i) + extra


def patches(spec: RunSpec) -> int:
    """Patches the vision encoder runs on in one micro-batch (DPO's pairs send their images twice)."""
    return spec.batch_size * spec.sequences * spec.images * spec.shape.vision.patches_per_image


@term
def vision_weights(spec: RunSpec) -> Optional[Part]:
    """The encoder and projector: never quantised (engine/vision/modules.py keeps them 16-bit), so in the
    compute dtype (fp32 master weights for methods that train the base)."""
    v = spec.shape.vision
    if v is None:
        return None
    ub = unquantised_bytes(spec)
    return Part("vision weights", v.total_params * ub / GB,
                f"encoder {_b(v.encoder_params)} + projector {_b(v.projector_params)} params in {_dtype_name(ub)}, never quantised")


@term
def image_inputs(spec: RunSpec) -> Optional[Part]:
    """The micro-batch's pixels and pixel mask, alive for the whole step."""
    v = spec.shape.vision
    if v is None or not spec.images:
        return None
    pixels = spec.batch_size * spec.sequences * spec.images * v.crops_per_image * v.image_size**2
    crops = f"{v.crops_per_image} crops of " if v.crops_per_image > 1 else ""
    return Part("image inputs", pixels * (PIXEL_BYTES + PIXEL_MASK_BYTES) / GB,
                f"{spec.images} image(s)/record{' (twice: chosen and rejected)' if spec.sequences > 1 else ''} x "
                f"{crops}{v.image_size}x{v.image_size} px, fp32 + mask; "
                f"{v.tokens_per_image} image tokens each, inside max_len {spec.max_len}")


@term
def vision_activations(spec: RunSpec) -> Optional[Part]:
    """Saved for backward on the vision side: nothing when it is frozen (see the module docstring)."""
    v = spec.shape.vision
    if v is None or not spec.images or not (spec.vision_lora or spec.projector_trains):
        return None
    n, c = patches(spec), spec.compute_bytes
    # the image features now carry gradients, so placing them among the text embeddings keeps one
    # LM-input-sized tensor (measured: c x LM hidden per token of the micro-batch)
    merge = c * spec.shape.hidden_size * spec.tokens
    per_patch, how = 0.0, []
    if spec.projector_trains:
        per_patch += c * v.hidden_size
        how.append("projector input")
    if spec.vision_lora:
        if spec.gradient_checkpointing:
            per_patch += v.num_layers * c * v.hidden_size
            how.append(f"checkpointed: {v.num_layers} encoder layer inputs")
        else:
            layer = vision_layer_bytes(spec)
            per_patch += v.num_layers * layer + 2 * c * v.hidden_size  # + the final LayerNorm's input and output
            how.append(f"{v.num_layers} encoder layers x {layer / 1024:.1f} kB/patch")
    return Part("vision activations", (per_patch * n + merge) / GB,
                f"{' + '.join(how)}; {n} patches per micro-batch + the image features' merge into the LM input")
