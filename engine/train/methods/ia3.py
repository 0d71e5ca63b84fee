"""(IA)^3 through peft: learned vectors that rescale the keys, values and the FFN's inner activations.

The fewest trainable parameters of the reparametrisation family (one number per channel);
it multiplies existing weights, so it merges into them. peft supports it on 4/8-bit bases.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.train.methods import Export, Method, register_method

# k/v projections are rescaled on their output; the FFN's down projection on its input.
KEY_VALUE = ("k_proj", "v_proj", "qkv_proj", "c_attn", "query_key_value")
FEEDFORWARD = ("down_proj", "c_proj", "fc2", "dense_4h_to_h", "w2")


def ia3_modules(names) -> tuple[list[str], list[str]]:
    """(target modules, feed-forward modules) among a layer's linear names."""
    kv = [n for n in names if n in KEY_VALUE]
    ff = [n for n in names if n in FEEDFORWARD]
    return kv + ff, ff


@dataclass(frozen=True)
class Ia3Method(Method):
    def refusal(self, facts, cfg):
        return None

    def attach(self, model, cfg, head):
        from peft import IA3Config, get_peft_model

        from engine.errors import ConfigError
        from engine.train.model_setup import HEADS, linear_layer_names

        targets, ff = ia3_modules(linear_layer_names(model))
        if not targets:
            raise ConfigError(f"method=ia3 found no key/value or feed-forward projections in this model (its linear layers: "
                              f"{', '.join(linear_layer_names(model))}); use method=lora.")
        return get_peft_model(model, IA3Config(target_modules=targets, feedforward_modules=ff, task_type=HEADS[head][1]))

    def trainable(self, shape, cfg):
        targets, ff = ia3_modules([m[0] for m in shape.linear_modules])
        n = sum(i if name in ff else o for name, i, o in shape.linear_modules if name in targets)
        return n * shape.num_layers


register_method(Ia3Method(
    "ia3", "reparametrisation", "(IA)^3: learned per-channel scales on keys, values and the FFN; the fewest parameters.",
    Export(merge=True), lr_factor=5.0, base_formats=("none", "8bit", "4bit")))
