"""`engine config`: every run-config option with its help, or a resolved config as YAML."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("config", help="List every config option, or print a resolved config.")
    p.add_argument("file", nargs="?", help="YAML config to resolve (optional).")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. lr=1e-3 lora.r=8.")
    p.add_argument("--fields", action="store_true", help="List every option with its type, default and help.")
    p.set_defaults(run=run)


def run(args) -> int:
    import yaml

    from engine.config import ALIASES, iter_fields, load_config, to_dict
    from engine.config.loader import describe_type

    if args.fields or not args.file and not args.overrides:
        short = {v: k for k, v in ALIASES.items()}
        for f in iter_fields():
            alias = f"  (alias: {short[f.key]})" if f.key in short else ""
            choices = f"  [{' | '.join(f.choices)}]" if f.choices else ""
            print(f"{f.key}: {describe_type(f.type)} = {f.default!r}{choices}{alias}\n    {f.help}")
        return 0
    file = args.file
    overrides = list(args.overrides)
    if file and "=" in file and not file.endswith((".yaml", ".yml")):
        overrides.insert(0, file)
        file = None
    print(yaml.safe_dump(to_dict(load_config(file, overrides)), sort_keys=False), end="")
    return 0
