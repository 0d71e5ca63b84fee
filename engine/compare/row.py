"""One method's line in a comparison, read back from its run folder and its held-out checks."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional


@dataclass
class Row:
    """What `engine compare` reports for one method (None = not measured)."""

    method: str
    group: str
    status: str = "pending"  # completed | failed | refused | pending
    lr: Optional[float] = None
    base_format: str = ""
    trainable_params: Optional[int] = None
    total_params: Optional[int] = None
    peak_memory_gb: Optional[float] = None
    tokens_per_s: Optional[float] = None
    seconds: Optional[float] = None
    train_loss: Optional[float] = None
    heldout_loss: Optional[float] = None
    base_heldout_loss: Optional[float] = None
    answers_correct: Optional[int] = None
    answers_total: Optional[int] = None
    base_answers_correct: Optional[int] = None
    export: str = ""
    error: str = ""
    losses: list = field(default_factory=list)  # (step, loss) for the plot

    @property
    def trainable_pct(self) -> Optional[float]:
        if self.trainable_params is None or not self.total_params:
            return None
        return 100.0 * self.trainable_params / self.total_params

    def to_dict(self) -> dict:
        d = asdict(self)
        d["trainable_pct"] = self.trainable_pct
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Row":
        d = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**d)
