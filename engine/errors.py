"""User-facing errors.

An `EdgetuneError` is something the user caused and can fix (a bad file, a bad
config value, an unsupported model). The CLI prints its message without a
traceback and exits with status 2; everything else is a bug and keeps its traceback.
"""


class EdgetuneError(Exception):
    """An error the user can fix. The message names the thing and the fix."""


class ConfigError(EdgetuneError):
    """A run config value is unknown, has the wrong type or clashes with another."""


class DataError(EdgetuneError):
    """A dataset file cannot be read or holds records of an unknown shape."""


class ModelSourceError(EdgetuneError):
    """A model cannot be found or loaded from the given source."""
