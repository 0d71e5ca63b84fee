"""llama.cpp loader: it lives in engine.runtimes.llama (chat uses it too; it is inference, not export).

Kept so `from exporters.gguf.llama_runtime import load_llama` keeps working.
"""

from engine.runtimes.llama import amx_in_build, extra_buffers_safe, load_llama  # noqa: F401
