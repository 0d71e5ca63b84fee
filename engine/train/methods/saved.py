"""A trained adapter folder back onto its base: peft adapters and edgetune's own modules alike.

    model = load_adapter(base_model, run_dir / "adapter")

Chat, eval, merge, serve and the preference/RL recipes that start from a run all come through
here, so every method in the registry is usable wherever a run is.
"""

from __future__ import annotations

from pathlib import Path

PEFT_CONFIG = "adapter_config.json"


def adapter_kind(adapter_dir: Path) -> str:
    """'peft', 'module' (edgetune's bottleneck adapters) or '' when the folder holds no adapter."""
    from engine.train.methods.bottleneck import CONFIG

    adapter_dir = Path(adapter_dir)
    if (adapter_dir / PEFT_CONFIG).is_file():
        return "peft"
    if (adapter_dir / CONFIG).is_file():
        return "module"
    return ""


def is_adapter_dir(adapter_dir: Path) -> bool:
    return adapter_kind(adapter_dir) != ""


def load_adapter(model, adapter_dir: Path, is_trainable: bool = False):
    """`model` with the adapter in `adapter_dir` attached (peft's PeftModel, or the base with modules added).
    A soft prompt comes back as a PromptedLM: decodable with a KV cache, logits aligned with the input."""
    kind = adapter_kind(adapter_dir)
    if kind == "peft":
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=is_trainable)
        from engine.train.methods.soft_prompt_runtime import PromptedLM, is_soft_prompt

        return PromptedLM(model) if is_soft_prompt(model) and not is_trainable else model
    if kind == "module":
        from engine.train.methods.bottleneck_layers import load_bottlenecks

        model = load_bottlenecks(model, adapter_dir)
        if not is_trainable:
            for p in model.parameters():
                p.requires_grad_(False)
        return model
    raise FileNotFoundError(f"{adapter_dir} holds no adapter ({PEFT_CONFIG} or edgetune_adapter.json)")


def base_model_of(adapter_dir: Path) -> str:
    """The base model an adapter folder names (peft's base_model_name_or_path or ours)."""
    import json

    from engine.train.methods.bottleneck import CONFIG

    adapter_dir = Path(adapter_dir)
    for name in (PEFT_CONFIG, CONFIG):
        if (adapter_dir / name).is_file():
            return json.loads((adapter_dir / name).read_text()).get("base_model_name_or_path") or ""
    return ""


def is_mergeable_adapter(adapter_dir: Path) -> tuple[bool, str]:
    """(mergeable, why not) for a saved adapter: soft prompts and bottleneck modules do not fold into weights."""
    import json

    from engine.train.methods import get_method

    adapter_dir = Path(adapter_dir)
    if adapter_kind(adapter_dir) == "module":
        return False, get_method("adapter_serial").export.why_not
    if adapter_kind(adapter_dir) == "peft":
        ptype = json.loads((adapter_dir / PEFT_CONFIG).read_text()).get("peft_type", "")
        if ptype in ("PROMPT_TUNING", "PREFIX_TUNING", "P_TUNING"):
            return False, get_method("prompt").export.why_not
    return True, ""
