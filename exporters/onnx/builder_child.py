"""Run ONNX Runtime GenAI's model builder with the config fixes it needs for transformers 5 configs.

    python -m exporters.onnx.builder_child -i MODEL -o OUT -p int4 -e cpu -c CACHE --extra_options ...

Same arguments as `python -m onnxruntime_genai.models.builder`. transformers 5 writes the
rotary settings of models with two kinds of attention layers (Gemma 3) as one dict per layer
type, `rope_parameters = {"full_attention": {...}, "sliding_attention": {...}}`; the builder
(0.18) reads a flat `rope_parameters["rope_type"]` and a `rope_local_base_freq`, and stops with
KeyError 'rope_type'. The config object the builder loads is put into the old shape here, in
the builder's own process, before it builds anything; the config.json on disk is not touched
(transformers 5 refuses the flat form when it loads the weights).
"""

from __future__ import annotations


def flatten_rope_parameters(config) -> bool:
    """Put per-layer-type rope_parameters (and a nested text_config's) into the flat form; whether any changed."""
    changed = False
    for cfg in (config, getattr(config, "text_config", None)):
        params = getattr(cfg, "rope_parameters", None) if cfg is not None else None
        if not (isinstance(params, dict) and params and all(isinstance(v, dict) for v in params.values())):
            continue
        full = params.get("full_attention") or next(iter(params.values()))
        local = params.get("sliding_attention")
        if local is not None:
            cfg.rope_local_base_freq = local["rope_theta"]
        cfg.rope_parameters = dict(full)
        cfg.rope_theta = full["rope_theta"]
        changed = True
    return changed


def main() -> None:
    import onnxruntime_genai.models.builder as builder

    load = builder.get_hf_details

    def get_hf_details(*args, **kwargs):
        details = load(*args, **kwargs)
        flatten_rope_parameters(details["hf_config"])
        return details

    builder.get_hf_details = get_hf_details  # parse_extra_options looks it up in the module at call time
    args = builder.get_args()
    extra_options = builder.parse_extra_options(
        args.model_name, args.input, args.output, args.precision, args.execution_provider, args.cache_dir,
        args.extra_options, builder_config_version=args.builder_config_version, target_options=args.target_options,
        drafter_options=args.drafter_options, speculative_options=args.speculative_options,
        runtime_config=args.runtime_config, search=args.search)
    builder.create_model(args.model_name, args.input, args.output, args.precision, args.execution_provider,
                         args.cache_dir, **extra_options)


if __name__ == "__main__":
    main()
