"""Keep a frozen input-embedding table in host RAM while the rest of the model trains on the GPU.

An adapter run never updates the token-embedding table, and a step reads only the rows of the
tokens in its batch. On Llama-3.1-8B the table is 128256 x 4096 16-bit values, 0.98 GB of an
8 GB card spent on a lookup. With `train.offload_embedding` the table stays in CPU RAM: the
token ids go to the host, the lookup runs there, and only the looked-up rows (micro-batch x
tokens x hidden, 16 MB for 2048 tokens of an 8B model) go to the GPU. Unsloth offers the same
(`offload_embedding=True`).

    install(model, cfg, device)   # after the backend has loaded the model and attached the adapter

The module (host_embedding_module.py) hides the table from `parameters()`, `state_dict()` and `.to()` (a Trainer or accelerate moving
the model leaves it on the host); its output goes back to the device the token ids came from.
Not for a table the run trains, one tied to the output head (the head needs it on the GPU), or
soft-prompt methods (peft keeps its own handle on the table).
"""

from __future__ import annotations

from typing import Optional

from engine.errors import ConfigError


def _why_not(model, cfg) -> Optional[str]:
    """Why the input embedding of `model` cannot stay on the host, or None when it can."""
    emb, head = model.get_input_embeddings(), model.get_output_embeddings()
    if emb is None or not hasattr(emb, "weight"):
        return "the model has no input-embedding table"
    if head is not None and getattr(head, "weight", None) is emb.weight:
        return "its embedding is tied to the output head, which needs the table on the GPU"
    if any(p.requires_grad for p in emb.parameters()):
        return "the run trains the embedding table"
    if cfg.dist.strategy != "ddp":
        return f"dist.strategy={cfg.dist.strategy} places every parameter itself (the table included)"
    configs = getattr(model, "peft_config", {}) or {}
    if any(getattr(c, "is_prompt_learning", False) for c in configs.values()):
        return f"method={cfg.method} reads the table through peft's own handle"
    return None


HOST_DEVICES = ("cpu",)  # where the table already lives in host RAM: nothing to move


def wanted(cfg, device: str) -> bool:
    """Whether `train.offload_embedding` asks for it on `device` (it changes nothing on a CPU). Torch-free: the
    planner asks the same question before any model exists."""
    from engine.train.methods import get_method

    setting = cfg.train.offload_embedding
    return device not in HOST_DEVICES and get_method(cfg.method).is_adapter and setting in (True, "auto")


def install(model, cfg, device: str) -> int:
    """Move `model`'s frozen input embedding to the host when asked and possible; returns the number of
    values moved (0 when it stays). ConfigError when `train.offload_embedding=true` cannot apply."""
    if not wanted(cfg, device):
        return 0
    why = _why_not(model, cfg)
    if why:
        if cfg.train.offload_embedding is True:
            raise ConfigError(f"train.offload_embedding=true does not apply: {why}. Use train.offload_embedding=auto "
                              f"(it then stays on the {device}) or false.")
        return 0
    from engine.train.host_embedding_module import HostEmbedding

    emb = model.get_input_embeddings()
    for module in model.modules():
        for name, child in module.named_children():
            if child is emb:
                setattr(module, name, HostEmbedding(emb))
    return emb.weight.numel()


def host_params(model) -> int:
    """Values of embedding tables kept on the host (hidden from `model.parameters()`)."""
    return sum(m.host_numel() for m in model.modules() if hasattr(m, "host_numel"))
