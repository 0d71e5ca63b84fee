"""What each training stage does and which data it needs, as the app explains it.

    STAGES["dpo"].explanation   # one line under the Method page's stage chooser
    STAGES["dpo"].data          # what the Data page must hold for it
    stages_for_kind("preference")  # ['dpo', 'orpo', 'simpo', 'kto', 'rm']

The engine owns the stages (`stage` in engine/config/schema.py, choices and
help) and says per data file which stages can train on it (`stages` in the
data inspection). This module only holds the app's wording, keyed by stage
name, plus a fallback for an engine that predates stages: then only SFT runs
and chat / text data is all it reads.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.config import FIELDS


@dataclass(frozen=True)
class StageInfo:
    """One stage: its name, a one-line explanation, the data it trains on, the data kinds it reads."""

    name: str
    title: str
    explanation: str
    data: str
    kinds: tuple


STAGES: dict[str, StageInfo] = {s.name: s for s in (
    StageInfo("sft", "Supervised fine-tuning",
              "Supervised fine-tuning on chats/instructions, or continued pre-training on raw text.",
              "alpaca, sharegpt, messages or raw text", ("chat", "text")),
    StageInfo("dpo", "Direct Preference Optimization",
              "Direct Preference Optimization against the start model as reference.",
              "preference pairs (prompt / chosen / rejected)", ("preference",)),
    StageInfo("orpo", "Odds-Ratio Preference Optimization",
              "Odds-Ratio Preference Optimization: SFT + preference in one step, no reference model.",
              "preference pairs (prompt / chosen / rejected)", ("preference",)),
    StageInfo("simpo", "SimPO",
              "SimPO: length-normalised, reference-free preference loss.",
              "preference pairs (prompt / chosen / rejected)", ("preference",)),
    StageInfo("kto", "Kahneman-Tversky Optimization",
              "Kahneman-Tversky Optimization from thumbs-up/down labels.",
              "prompt / completion / label records, or preference pairs", ("kto", "preference")),
    StageInfo("rm", "Reward model",
              "Reward model: a scalar score head trained on preference pairs; scores answers or drives RL.",
              "preference pairs (prompt / chosen / rejected)", ("preference",)),
    StageInfo("grpo", "GRPO (online RL)",
              "GRPO: sample several answers per prompt, score them with rewards (rl.rewards: built-ins, a Python "
              "function, a reward-model run) and favour those above their group's mean.",
              "prompt-only records (prompt + any columns the rewards read)", ("prompt",)),
    StageInfo("rloo", "RLOO (online RL)",
              "RLOO: as GRPO, each answer's baseline the mean reward of the other answers to its prompt.",
              "prompt-only records (prompt + any columns the rewards read)", ("prompt",)),
)}

# Config sections shared by several stages (one section, several owners)
SHARED_SECTIONS = {"rl": ("grpo", "rloo")}

# How the app names a data kind in a sentence.
KIND_WORDS = {"chat": "chat / instruction data", "text": "raw text", "preference": "preference pairs",
              "kto": "thumbs-up/down (KTO) records", "prompt": "prompt-only records (online RL)"}


def engine_has_stages() -> bool:
    """Whether this engine's run config has a `stage` option (engines before preference training do not)."""
    return "stage" in FIELDS


def stage_names() -> list[str]:
    """The stages this engine trains, in its own order (just 'sft' for an engine without stages)."""
    if engine_has_stages():
        return [str(c) for c in FIELDS["stage"].choices] or ["sft"]
    return ["sft"]


def describe(stage: str) -> StageInfo:
    """The app's wording for `stage` (a stage the app does not know yet gets the engine's help text)."""
    if stage in STAGES:
        return STAGES[stage]
    help_text = FIELDS["stage"].help if engine_has_stages() else ""
    return StageInfo(stage, stage, help_text or f"The engine's '{stage}' stage.", "see `engine config --fields`", ())


def section_stages(section: str) -> tuple:
    """'rl' -> ('grpo', 'rloo'), 'dpo' -> ('dpo',): the stages a config section belongs to, () when every stage shares it."""
    if section in SHARED_SECTIONS:
        return SHARED_SECTIONS[section]
    owner = section_stage(section)
    return (owner,) if owner else ()


def section_stage(section: str) -> str | None:
    """'dpo' -> 'dpo': the (first) stage a config section belongs to, None for sections every stage shares."""
    if section in SHARED_SECTIONS:
        return SHARED_SECTIONS[section][0]
    return section if section != "sft" and (section in STAGES or section in stage_names()) else None


def key_applies(key: str, stage: str) -> bool:
    """Whether config key `key` means something under `stage` (shared keys always do)."""
    owners = section_stages(key.split(".", 1)[0]) if "." in key else ()
    return not owners or stage in owners


def stage_of_key(key: str) -> str | None:
    """'dpo.beta' -> 'dpo': the stage a config key belongs to, None for keys every stage shares."""
    return section_stage(key.split(".", 1)[0]) if "." in key else None


def stages_for_kind(kind: str) -> list[str]:
    """The stages that read data of this kind (the fallback when an inspection does not list them).

    An engine without stages trains SFT on whatever it reads (preference pairs: on the chosen answer).
    """
    if not engine_has_stages():
        return ["sft"]
    return [s for s in stage_names() if kind in describe(s).kinds]


def report_field(report, name: str, default=None):
    """A field of a data inspection: an attribute of the report, else its JSON form (`to_dict()`)."""
    if report is None:
        return default
    value = getattr(report, name, None)
    if value is None and hasattr(report, "to_dict"):
        try:
            value = report.to_dict().get(name)
        except Exception:  # an older report whose to_dict cannot answer: use the default
            value = None
    return default if value is None else value


def report_stages(report) -> list[str]:
    """The stages that can train on the inspected data: the report's `stages`, else derived from its kind."""
    stages = report_field(report, "stages")
    if stages:
        return [str(s) for s in stages]
    return stages_for_kind(str(report_field(report, "kind", "")))
