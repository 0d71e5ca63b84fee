"""GGUF export for llama.cpp / Ollama / LM Studio: no clone, no compiler, no download.

    from exporters.gguf import GgufExporter, convert_hf_to_gguf
    GgufExporter(model_dir, out_dir).export(["q8_0", "q4_k_m"])     # write, quantise, verify, Modelfile

Layout (one concept per file):
  registry.py, archs/      architecture registry; one file per family (llama, qwen2, qwen3, gemma2, gemma3, phi3)
  tensors.py, convert.py   stream safetensors -> GGUF tensors (f32/f16/bf16/q8_0) with the gguf package
  vocab.py, pretokenizer.py, chat_format.py   tokenizer metadata, pre-tokenizer id, chat turns / end-of-turn
  metadata.py              general.* keys
  quantize.py              k-quants via llama.cpp's llama_model_quantize (llama-cpp-python)
  verify.py, advisor.py    llama.cpp vs HF: token ids, logits NMSE/KL/top-1, stopping; --quant auto
  modelfile.py             Ollama Modelfile from the chat template
  lora.py, adapter_export.py   LoRA adapter GGUF for llama.cpp --lora
  (truncation detection: engine/formats/gguf_integrity.py; llama.cpp loading: engine/runtimes/llama.py;
   temp-file writes and disk checks: exporters/safe_write.py)
  exporter.py, progress.py, cli.py   orchestration, progress bar/events, `engine export gguf`

Importing this package is cheap; heavy modules load inside functions.
"""

from __future__ import annotations


def __getattr__(name):
    if name == "GgufExporter":
        from exporters.gguf.exporter import GgufExporter

        return GgufExporter
    if name == "convert_hf_to_gguf":
        from exporters.gguf.convert import convert_hf_to_gguf

        return convert_hf_to_gguf
    raise AttributeError(name)
