"""ONNX GenAI chat runtime: it lives in engine.runtimes.onnx_genai (chat uses it too; it is inference, not export).

Kept so `from exporters.onnx.runtime import OnnxChatModel` keeps working.
"""

from engine.runtimes.onnx_genai import (  # noqa: F401
    RUNTIME_OVERHEAD_GB, WEIGHTS_FACTOR, Generation, OnnxChatModel, memory_needed_gb, min_kv_capacity,
    sliding_window_size,
)
