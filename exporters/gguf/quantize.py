"""K-quants and the other llama.cpp types through llama.cpp's own quantizer, shipped in llama-cpp-python.

    quantize_gguf(Path("model-f16.gguf"), Path("model-q4_k_m.gguf"), "q4_k_m")

`llama_model_quantize` is the same code as the `llama-quantize` tool, reached through
llama-cpp-python's ctypes bindings: no git clone, no cmake, no download at export time.
It picks per-tensor types itself (q4_k_m keeps some tensors at q6_k, and falls back
to other types for rows that do not split into 256-wide k-quant blocks).
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

from engine.errors import EdgetuneError
from exporters.gguf.qtypes import gguf_type


def llama_cpp_available() -> bool:
    """True when llama-cpp-python can be imported."""
    try:
        import llama_cpp  # noqa: F401
    except Exception:
        return False
    return True


def require_llama_cpp(why: str):
    """Import llama_cpp or fail with the install command."""
    try:
        import llama_cpp
    except Exception as e:
        raise EdgetuneError(
            f"{why} needs llama-cpp-python, which is not installed or does not load ({type(e).__name__}: {e}). "
            f"Install it with: pip install 'edgetune[gguf]'  (or skip this with --quant f16/q8_0 --no-verify)."
        ) from None
    return llama_cpp


def quiet_llama_logs() -> None:
    """Only llama.cpp's errors reach the terminal (it logs every tensor otherwise).

    EDGETUNE_LLAMA_VERBOSE=1 keeps the full log for debugging.
    """
    if os.environ.get("EDGETUNE_LLAMA_VERBOSE"):
        return
    try:
        from llama_cpp import _logger

        _logger.set_verbose(False)
    except Exception:  # an older llama-cpp-python without the logger module: stay verbose
        pass


class _Captured:
    def __init__(self, path: Path):
        self.path = path
        self.content = ""

    def text(self) -> str:
        return self.content


@contextlib.contextmanager
def captured_stderr():
    """Send the C library's stderr (llama.cpp prints a line per tensor) to a temp file while inside."""
    import tempfile

    if os.environ.get("EDGETUNE_LLAMA_VERBOSE"):
        yield _Captured(Path(os.devnull))
        return
    sys.stderr.flush()
    fd, name = tempfile.mkstemp(prefix="edgetune-llama-", suffix=".log")
    saved = os.dup(2)
    captured = _Captured(Path(name))
    try:
        os.dup2(fd, 2)
        yield captured
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(fd)
        captured.content = captured.path.read_text(encoding="utf-8", errors="replace")
        captured.path.unlink(missing_ok=True)


@contextlib.contextmanager
def interrupts_deferred(done: str = "the quantizer has returned"):
    """Ctrl-C / SIGTERM during llama.cpp's quantizer (or another short step that must not be cut in two,
    `done` naming its end) take effect when it returns.

    The quantizer is one C call that logs through a Python callback; an interrupt raised inside
    that callback is swallowed by ctypes, so the export used to finish as if nothing happened.
    Here the signal is noted, and KeyboardInterrupt is raised once the call is back in Python,
    where the temp-file cleanup runs.
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    old = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in old:
        signal.signal(sig, lambda signum, frame: caught.append(signum))
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    if caught:
        print(f"interrupted: {done}, cleaning up", file=sys.stderr)
        raise KeyboardInterrupt


def quantize_gguf(src: Path, dst: Path, quant: str, threads: int = 0) -> None:
    """Quantise an f32/f16/bf16 GGUF `src` into `dst` (written under a temp name, renamed when complete)."""
    from engine.formats.gguf_integrity import check_gguf
    from exporters.safe_write import atomic_path

    spec = gguf_type(quant)
    llama_cpp = require_llama_cpp(f"Quantising to {quant}")
    quiet_llama_logs()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = spec.ftype
    params.nthread = threads or max(1, (os.cpu_count() or 2))
    params.allow_requantize = False
    with atomic_path(Path(dst)) as tmp:
        with captured_stderr() as log, interrupts_deferred():
            rc = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), params)
        if rc != 0 or not tmp.is_file():
            tail = "\n".join(log.text().strip().splitlines()[-5:])
            raise EdgetuneError(
                f"llama.cpp could not quantise '{src}' to {quant} (return code {rc}); an f16 or q8_0 export of the "
                f"same model is written directly and may still work. llama.cpp said:\n{tail}"
            )
        check_gguf(tmp)
