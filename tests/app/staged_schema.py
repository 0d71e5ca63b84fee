"""The run config with training stages (issue 14's contract), for app tests on an engine that predates it.

    install(monkeypatch)   # no-op when engine.config already has `stage`

Adds `stage` (sft/dpo/orpo/simpo/kto/rm) and the per-stage sections to the
engine's FIELDS and RunConfig for the length of one test, and the engine's rule
that a section key set (even to its default) for another stage is a ConfigError. Once the engine has
stages, the tests run against the real schema instead.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from engine.config import FIELDS, loader
from engine.config.schema import RunConfig, opt
from engine.errors import ConfigError

STAGE_CHOICES = ["sft", "dpo", "orpo", "simpo", "kto", "rm"]


@dataclass
class DpoSettings:
    beta: float = opt(0.1, "DPO beta: how far the policy may move from the reference.")
    loss_type: str = opt("sigmoid", "DPO loss variant.", choices=["sigmoid", "ipo", "hinge"])
    label_smoothing: float = opt(0.0, "Label smoothing for noisy preferences.")
    precompute_ref: bool = opt(False, "Compute the reference log-probs once before training.")


@dataclass
class OrpoSettings:
    beta: float = opt(0.1, "ORPO lambda: weight of the odds-ratio term.")


@dataclass
class SimpoSettings:
    beta: float = opt(2.0, "SimPO beta.")
    gamma: float = opt(0.5, "SimPO target reward margin.")


@dataclass
class KtoSettings:
    beta: float = opt(0.1, "KTO beta.")
    desirable_weight: float = opt(1.0, "Weight of thumbs-up examples.")
    undesirable_weight: float = opt(1.0, "Weight of thumbs-down examples.")
    precompute_ref: bool = opt(False, "Compute the reference log-probs once before training.")


@dataclass
class RmSettings:
    center_rewards: float = opt(0.0, "Pull the mean reward towards 0 with this weight.")


SECTIONS = {"dpo": DpoSettings, "orpo": OrpoSettings, "simpo": SimpoSettings, "kto": KtoSettings, "rm": RmSettings}


def staged_run_config() -> type:
    """RunConfig plus `stage`, the stage sections and sequence.max_prompt_len's stand-in."""
    extra = [("stage", str, opt("sft", "Training stage.", choices=STAGE_CHOICES))]
    extra += [(name, cls, field(default_factory=cls, metadata={"help": f"{name.upper()} options."}))
              for name, cls in SECTIONS.items()]
    return dataclasses.make_dataclass("RunConfig", extra, bases=(RunConfig,))


def install(monkeypatch) -> None:
    """Give the engine's config a `stage` for this test (nothing to do when it has one)."""
    if "stage" in FIELDS:
        return
    cls = staged_run_config()
    for info in loader.iter_fields(cls):
        if info.key not in FIELDS:
            monkeypatch.setitem(FIELDS, info.key, info)
    monkeypatch.setattr(loader, "RunConfig", cls)
    original = loader.from_flat

    def from_flat(flat: dict):
        stage = flat.get("stage", "sft")
        for key in flat:  # like the engine: any key of another stage's section, default or not, is refused
            owner = key.split(".", 1)[0]
            if owner in SECTIONS and owner != stage:
                raise ConfigError(f"{key} is an option of stage={owner}, but stage={stage}. Set stage={owner}, "
                                  f"or remove {key}.")
        return original(flat)

    monkeypatch.setattr(loader, "from_flat", from_flat)
