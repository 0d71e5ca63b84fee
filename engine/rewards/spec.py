"""The `rl.rewards` grammar, parsed and checked without torch (so `engine plan` and the config check see it).

An entry is a string '[WEIGHT*]SOURCE' or a mapping {reward: SOURCE, weight: W, <option>: value}:

    length                      built-in, default options          0.5*contains_answer    weighted
    {reward: length, target: 8} built-in with options              rewards.py:brevity     a Python function
    rm:runs/rm                  a reward-model run (stage=rm)

A problem raises ConfigError naming the entry and what was expected, before any model loads.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from engine.errors import ConfigError


@dataclass
class RewardSpec:
    kind: str  # builtin | python | rm
    target: str  # the built-in's name, 'file.py:func', or the rm run folder
    weight: float = 1.0
    options: dict = field(default_factory=dict)
    text: str = ""  # the entry as written, for messages

    @property
    def name(self) -> str:
        """The reward's name in metrics and events: the built-in, the function or 'rm:<run folder name>'."""
        if self.kind == "python":
            return self.target.rsplit(":", 1)[1]
        if self.kind == "rm":
            return f"rm_{Path(self.target).name}"
        return self.target


def _split_weight(text: str, where: str) -> tuple[float, str]:
    head, star, rest = text.partition("*")
    if not star:
        return 1.0, text.strip()
    try:
        return float(head), rest.strip()
    except ValueError:
        raise ConfigError(f"{where}: '{text}' has a weight that is not a number ('{head}'); write e.g. "
                          f"'0.5*{rest.strip()}'.") from None


def parse_one(entry, where: str) -> RewardSpec:
    """One `rl.rewards` entry as a RewardSpec (checked: known built-in and options, file present, rm run present)."""
    from engine.rewards.builtin import BUILTINS

    if isinstance(entry, dict):
        entry = dict(entry)
        source = entry.pop("reward", None)
        if not isinstance(source, str):
            raise ConfigError(f"{where}: a mapping entry needs 'reward: SOURCE' (a built-in, file.py:func or "
                              f"rm:RUN), got {entry!r}.")
        try:
            weight = float(entry.pop("weight", 1.0))
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: weight of '{source}' should be a number.") from None
        options, text = entry, source
    elif isinstance(entry, str) and entry.strip():
        weight, source = _split_weight(entry, where)
        options, text = {}, entry
    else:
        raise ConfigError(f"{where}: each reward is a string or a mapping, got {entry!r}.")
    if source.startswith("rm:"):
        run = source[3:].strip()
        spec = RewardSpec("rm", run, weight, options, text)
        _check_rm_run(run, where)
    elif ".py:" in source or source.endswith(".py"):
        if not source.rpartition(":")[2] or source.endswith(".py"):
            raise ConfigError(f"{where}: '{source}' names a file but no function; write 'path/to/file.py:func'.")
        path = source.rsplit(":", 1)[0]
        if not Path(path).is_file():
            raise ConfigError(f"{where}: reward file '{path}' does not exist (from '{source}'). Give the path of a "
                              f"Python file relative to where you run engine, e.g. my_rewards.py:brevity.")
        spec = RewardSpec("python", source, weight, options, text)
    elif source in BUILTINS:
        spec = RewardSpec("builtin", source, weight, options, text)
        BUILTINS[source].check_options(options, where)
    else:
        raise ConfigError(f"{where}: unknown reward '{source}'. Use a built-in ({', '.join(BUILTINS)}), a Python "
                          f"function 'path/to/file.py:func' or a reward-model run 'rm:runs/<rm-run>'.")
    return spec


def _check_rm_run(run: str, where: str) -> None:
    from engine.models.checks import run_stage

    if not (Path(run) / "config.yaml").is_file():
        raise ConfigError(f"{where}: 'rm:{run}' is not a run folder (no config.yaml). Train a reward model first: "
                          f"engine train assets/presets/cpu_dpo.yaml stage=rm output_dir={run}")
    stage = run_stage(run)
    if stage != "rm":
        raise ConfigError(f"{where}: 'rm:{run}' is a stage={stage} run, not a reward model; give a run trained "
                          f"with stage=rm.")


def parse_rewards(entries) -> list[RewardSpec]:
    """Every `rl.rewards` entry parsed; an empty list is refused (RL without a reward learns nothing)."""
    if not entries:
        raise ConfigError("rl.rewards is empty: online RL needs at least one reward, e.g. rl.rewards='[length]' "
                          "or rl.rewards='[my_rewards.py:score]' (see `engine config --fields` for rl.rewards).")
    if isinstance(entries, (str, dict)):
        entries = [entries]
    specs = [parse_one(e, f"rl.rewards[{i}]") for i, e in enumerate(entries)]
    names = [s.name for s in specs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"rl.rewards names {', '.join(dup)} more than once; combine them with one weight instead.")
    return specs


def _builtin(spec, cfg):
    from engine.rewards.builtin import make_builtin

    return make_builtin(spec)


def _python(spec, cfg):
    from engine.rewards.python_file import load_function

    return load_function(spec.target)


def _rm(spec, cfg):
    from engine.rewards.reward_model import RewardModelReward

    return RewardModelReward(spec.target, spec.name)


# spec.kind -> factory(spec, cfg) -> reward callable (each imports its heavy parts only when used)
SOURCES: dict[str, Callable] = {"builtin": _builtin, "python": _python, "rm": _rm}
