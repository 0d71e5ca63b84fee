"""A user's reward function, `path/to/file.py:func`, loaded only from the path the config names.

The file runs as a module of its own (not on sys.path, so it cannot shadow a package). A missing
file, a file that fails to import, a missing or non-callable name each raise ConfigError naming it.
"""

from __future__ import annotations

import importlib.util
import traceback
from pathlib import Path
from typing import Callable

from engine.errors import ConfigError


def load_function(source: str) -> Callable:
    """The callable `func` of 'file.py:func'."""
    path_text, _, name = source.rpartition(":")
    path = Path(path_text)
    if not path.is_file():
        raise ConfigError(f"reward file '{path}' does not exist (rl.rewards entry '{source}').")
    module_name = f"edgetune_reward_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        frame = traceback.extract_tb(e.__traceback__)[-1]
        raise ConfigError(f"reward file '{path}' failed to import: {type(e).__name__}: {e} "
                          f"(at {frame.filename}:{frame.lineno}). Fix the file (rl.rewards entry '{source}').") from None
    fn = getattr(module, name, None)
    if fn is None:
        found = sorted(k for k, v in vars(module).items() if callable(v) and not k.startswith("_")
                       and getattr(v, "__module__", None) == module_name)
        raise ConfigError(f"reward file '{path}' has no function '{name}' (its functions: {', '.join(found) or 'none'}). "
                          f"Write rl.rewards='[{path}:<function>]'.")
    if not callable(fn):
        raise ConfigError(f"'{name}' in reward file '{path}' is a {type(fn).__name__}, not a function.")
    return fn
