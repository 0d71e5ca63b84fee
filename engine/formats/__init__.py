"""Facts about file formats that both the engine and the exporters need, with no heavy imports.

    onnx_targets.py    ONNX precisions and targets (the config's export.onnx_* choices, the exporter's builder options)
    gguf_integrity.py  is a GGUF file whole (model import, chat, export verification)

They live here, not in exporters/, so that engine's core (config, models, chat) never imports
exporters/: layers point one way (tests/engine/test_layers.py).
"""
