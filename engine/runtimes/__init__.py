"""Inference runtimes for exported models, shared by `engine chat` and the exporters' verification.

    llama.py       llama.cpp (llama-cpp-python) for .gguf files, without the AMX kernels that crash
    onnx_genai.py  onnxruntime-genai for ONNX GenAI folders

Running a model is inference, not export: the chat backends use these directly and the
exporters import them to verify what they wrote, so engine/ never imports exporters/.
"""
