"""ONNX precisions and targets: the table lives in engine.formats.onnx_targets (the config needs it too).

Kept so `from exporters.onnx.targets import ...` keeps working.
"""

from engine.formats.onnx_targets import (  # noqa: F401
    PRECISIONS, SMALL_MODEL_PARAMS, TARGETS, Precision, Target, folder_name, register_target, resolve_target,
    supported_pairs,
)
