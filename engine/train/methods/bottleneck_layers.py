"""Bottleneck adapters as torch modules, attached to a decoder's layers with forward hooks.

    serial (Houlsby et al. 2019)   after attention and after the FFN, before each residual add:
                                   h <- h + up(act(down(h)))
    parallel (He et al. 2022, MAM)  beside the FFN, reading its input:  ffn(x) + s * up(act(down(x)))

`up` starts at zero, so an attached adapter is the identity and training starts at the base model.
The `adapters` package (AdapterHub) pins transformers 4.x, so these are edgetune's own: a few
lines per placement, saved as adapter/bottleneck.safetensors + adapter/edgetune_adapter.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn as nn

from engine.errors import ConfigError
from engine.train.methods.bottleneck import CONFIG, WEIGHTS

PLACEMENTS = {"serial": ("self_attn", "mlp"), "parallel": ("mlp",)}


class Bottleneck(nn.Module):
    """down (hidden -> size), GELU, up (size -> hidden, zero-initialised), times `scale`."""

    def __init__(self, hidden: int, size: int, scale: float):
        super().__init__()
        self.down = nn.Linear(hidden, size)
        self.up = nn.Linear(size, hidden)
        self.act = nn.GELU()
        self.scale = scale
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x):
        return self.up(self.act(self.down(x.to(self.down.weight.dtype)))).to(x.dtype) * self.scale


def _layers(model):
    from engine.train.model_setup import decoder_layers

    return decoder_layers(model)


def _serial_hook(module, args, output):
    """After the block, before the residual add: h + adapter(h). The adapter is the block's own child, so a
    deep copy of the model (TRL's reference model) runs its own copy, not this one."""
    adapter = module.bottleneck
    if isinstance(output, tuple):
        return (output[0] + adapter(output[0]),) + tuple(output[1:])
    return output + adapter(output)


def _parallel_hook(module, args, output):
    """Beside the block, reading its input: block(x) + s * adapter(x)."""
    return output + module.bottleneck(args[0])


HOOKS = {"serial": _serial_hook, "parallel": _parallel_hook}


def attach_bottlenecks(model, placement: str, size: int, scale: float) -> int:
    """Freeze the model and add adapters to every decoder layer; returns how many were added."""
    for p in model.parameters():
        p.requires_grad_(False)
    hidden = model.config.get_text_config().hidden_size
    dtype = torch.float32  # adapters train in fp32 like peft's, whatever the base dtype
    device = next(model.parameters()).device
    added = 0
    for layer in _layers(model):
        for site in PLACEMENTS[placement]:
            block = getattr(layer, site, None)
            if block is None:
                raise ConfigError(f"bottleneck adapters hook each layer's `{site}` block, which this model's layers "
                                  f"({type(layer).__name__}) do not have; use method=lora.")
            block.add_module("bottleneck", Bottleneck(hidden, size, scale).to(device=device, dtype=dtype))
            block.register_forward_hook(HOOKS[placement])
            added += 1
    model.edgetune_bottleneck = {"placement": placement, "size": size, "scale": scale}
    return added


def adapter_state(model) -> dict:
    """The adapters' weights only (what adapter/ holds)."""
    return {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if ".bottleneck." in k}


def save_bottlenecks(model, out_dir: Path, base_model: str) -> None:
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(adapter_state(model), str(out_dir / WEIGHTS))
    meta = dict(model.edgetune_bottleneck, format="edgetune-bottleneck", base_model_name_or_path=base_model)
    (out_dir / CONFIG).write_text(json.dumps(meta, indent=1))


def load_bottlenecks(model, adapter_dir: Path):
    """Attach saved adapters to a freshly loaded base and load their weights (exact round trip)."""
    from safetensors.torch import load_file

    meta = json.loads((Path(adapter_dir) / CONFIG).read_text())
    attach_bottlenecks(model, meta["placement"], meta["size"], meta["scale"])
    state = load_file(str(Path(adapter_dir) / WEIGHTS))
    missing = [k for k in adapter_state(model) if k not in state]
    if missing:
        raise ConfigError(f"{adapter_dir}/{WEIGHTS} lacks {len(missing)} adapter tensors (e.g. {missing[0]}): "
                          f"it was saved from another model. Load it with the base it was trained on.")
    model.load_state_dict(state, strict=False)
    return model
