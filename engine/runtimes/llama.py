"""Open a GGUF in llama.cpp (llama-cpp-python) the one way every part of edgetune does.

    llm = load_llama(Path("model-q8_0.gguf"), n_ctx=2048)

Why not plain `Llama(...)`: llama-cpp-python builds llama.cpp for the CPU it is installed on.
On CPUs with Intel AMX (Xeon Sapphire Rapids and later) that build uses ggml's AMX kernels for
q4_0/q4_1/q8_0/k-quant weights, and those kernels crash the process with SIGILL on the first
batched matmul (`tilezero` after a tile configuration the compiler dropped; llama.cpp PR #26954).
Seen on this project's CI machine with llama-cpp-python 0.3.36 and gcc 12: any prompt of more
than a few tokens killed `engine chat`, the export's verification and the test run. The AMX
kernels live in llama.cpp's "extra buffer types" for weights, so on a build that reports
AMX we load with `use_extra_bufts = false`: weights stay in plain CPU buffers and the regular
AVX-512 kernels run them (same results). `EDGETUNE_LLAMA_EXTRA_BUFTS=1` keeps them, for a
llama.cpp where the bug is fixed.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

_PATCH_LOCK = threading.Lock()


def amx_in_build() -> bool:
    """True when the installed llama.cpp was compiled with its AMX kernels."""
    import llama_cpp

    info = llama_cpp.llama_print_system_info()
    text = info.decode("utf-8", "replace") if isinstance(info, bytes) else str(info)
    return "AMX_INT8 = 1" in text


def extra_buffers_safe() -> bool:
    """Whether llama.cpp may put weights in its extra (repacked / AMX) buffers."""
    if os.environ.get("EDGETUNE_LLAMA_EXTRA_BUFTS") == "1":
        return True
    return not amx_in_build()


def load_llama(path: Path | str, **kwargs):
    """`llama_cpp.Llama(str(path), **kwargs)`, without the AMX kernels that crash (see module doc).

    The file is checked first (engine.formats.gguf_integrity): a truncated or foreign file gets a
    message naming it instead of llama.cpp's bare "Failed to load model".
    """
    import llama_cpp.llama_cpp as capi
    from llama_cpp import Llama

    from engine.formats.gguf_integrity import check_gguf

    check_gguf(Path(path))

    if extra_buffers_safe():
        return Llama(str(path), **kwargs)
    # Llama() builds its model params from llama_model_default_params() and exposes no switch for
    # use_extra_bufts, so the defaults are adjusted for the duration of this one construction.
    with _PATCH_LOCK:
        default = capi.llama_model_default_params

        def without_extra_buffers():
            params = default()
            params.use_extra_bufts = False
            return params

        capi.llama_model_default_params = without_extra_buffers
        try:
            return Llama(str(path), **kwargs)
        finally:
            capi.llama_model_default_params = default
