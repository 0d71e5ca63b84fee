"""Sampling options shared by every chat backend."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields


@dataclass
class SamplingParams:
    temperature: float = 0.7  # 0 = greedy (deterministic; what tests and compare mode use)
    top_p: float = 0.95
    top_k: int = 40
    repeat_penalty: float = 1.1
    max_tokens: int = 256
    seed: int = 0

    def update(self, **kw) -> "SamplingParams":
        """Set fields from strings or values (e.g. from `/params temperature=0.2`)."""
        types = {f.name: f.type for f in fields(self)}
        for k, v in kw.items():
            if k not in types:
                raise ValueError(f"unknown sampling option {k!r}; options: {', '.join(types)}")
            setattr(self, k, (int if types[k] in ("int", int) else float)(v))
        return self

    def as_dict(self) -> dict:
        return asdict(self)
