"""The run config: one typed `RunConfig`, loaded from YAML and `key=value` overrides."""

from engine.config.schema import ALIASES, METHODS, RunConfig
from engine.config.loader import FIELDS, get_value, iter_fields, load_config, save_config, to_dict

__all__ = ["ALIASES", "FIELDS", "METHODS", "RunConfig", "get_value", "iter_fields", "load_config", "save_config", "to_dict"]
