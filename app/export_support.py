"""Which exporters accept a model architecture (shown on the Model page).

Each exporter owns its list of supported architectures (a registry of family
files); this asks them, so a family added to an exporter shows up here with no
change to the app. An exporter that is not installed answers None ("unknown").
"""

from __future__ import annotations

from typing import Callable, Optional


def _gguf_supported() -> list[str]:
    from exporters.gguf.registry import supported_architectures

    return supported_architectures()


def _onnx_supported() -> list[str]:
    from exporters.onnx.architectures import ARCHITECTURES
    from exporters.onnx.vlm_pipelines import vlm_architectures

    return sorted(ARCHITECTURES) + vlm_architectures()


# target -> function listing the HF architecture class names it converts
SUPPORTED_LISTS: dict[str, Callable[[], list[str]]] = {
    "gguf": _gguf_supported,
    "onnx": _onnx_supported,
}


def export_support(architecture: str) -> dict[str, tuple[Optional[bool], str]]:
    """target -> (supported, detail) for an HF architecture name such as 'LlamaForCausalLM'."""
    out: dict[str, tuple[Optional[bool], str]] = {}
    for target, listing in SUPPORTED_LISTS.items():
        try:
            known = listing()
        except ImportError as e:
            out[target] = (None, f"the {target} exporter is not installed ({e.name})")
            continue
        if architecture in known:
            out[target] = (True, f"the {target.upper()} exporter converts {architecture}")
        else:
            out[target] = (False, f"supported: {', '.join(known)}")
    return out
