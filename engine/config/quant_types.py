"""GGUF output types edgetune knows, without importing llama.cpp or gguf.

The first four are written directly by our converter; the rest come from
llama.cpp's quantizer (llama_model_quantize via llama-cpp-python).
"""

DIRECT_TYPES = ("f32", "f16", "bf16", "q8_0")
LLAMA_QUANT_TYPES = ("q4_0", "q4_1", "q5_0", "q5_1", "q2_k", "q3_k_m", "q4_k_s", "q4_k_m", "q5_k_s", "q5_k_m", "q6_k")
GGUF_TYPES = ("auto",) + DIRECT_TYPES + LLAMA_QUANT_TYPES
