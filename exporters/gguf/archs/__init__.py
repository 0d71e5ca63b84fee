"""Model families with a GGUF converter; importing this package registers them all.

One file per family. To add one: copy the closest file, set `gguf_arch` and the
HF class names in `@register_architecture(...)`, override only what differs.
"""

from exporters.gguf.archs import gemma2, gemma3, llama, phi3, qwen2, qwen3  # noqa: F401
