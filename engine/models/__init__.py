"""Model sources: resolve what the user typed to a local Hugging Face folder."""

from engine.models.sources import ResolvedModel, resolve_model, SOURCES

__all__ = ["ResolvedModel", "resolve_model", "SOURCES"]
