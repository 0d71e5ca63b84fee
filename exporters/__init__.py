"""Exporters: turn a trained model into files that run on a laptop or a phone (GGUF, ONNX)."""
