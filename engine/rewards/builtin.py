"""Built-in rewards for the common verifiable cases, by name in `rl.rewards` (a registry).

Each takes TRL's reward arguments (prompts, completions, the dataset's other columns as keyword
lists) and returns one float per completion. Completions arrive as text or, for chat prompts,
as [{"role": "assistant", "content": ...}]; `completion_text` reads both.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from typing import Callable

from engine.errors import ConfigError


def completion_text(completion) -> str:
    """The answer's text, whether TRL passes a string or a list of messages."""
    if isinstance(completion, list):
        return "".join(m.get("content", "") for m in completion if isinstance(m, dict))
    return str(completion)


def _normalise(text: str) -> str:
    text = str(text).lower().strip()
    text = text.translate(str.maketrans("", "", string.punctuation))
    return " ".join(text.split())


@dataclass
class Builtin:
    name: str
    summary: str
    options: dict  # option -> default
    make: Callable  # (options) -> fn(completions, **columns) -> list[float]

    def check_options(self, options: dict, where: str) -> None:
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            known = ", ".join(self.options) or "none"
            raise ConfigError(f"{where}: reward '{self.name}' has no option {', '.join(unknown)} (its options: {known}).")
        if self.name == "regex" and not options.get("pattern"):
            raise ConfigError(f"{where}: reward 'regex' needs a pattern, e.g. {{reward: regex, pattern: '^\\\\d+'}}.")
        if self.name == "regex":
            try:
                re.compile(options["pattern"])
            except re.error as e:
                raise ConfigError(f"{where}: regex pattern {options['pattern']!r} does not compile: {e}.") from None
        if self.name == "length":
            if float(options.get("target", 1)) <= 0:
                raise ConfigError(f"{where}: reward 'length' needs target > 0 (got {options['target']}).")
            if options.get("unit", "words") not in ("words", "chars"):
                raise ConfigError(f"{where}: reward 'length' option unit is 'words' or 'chars' (got {options['unit']!r}).")


BUILTINS: dict[str, Builtin] = {}


def builtin(name: str, summary: str, **options):
    def deco(make):
        BUILTINS[name] = Builtin(name, summary, options, make)
        return make

    return deco


def _answers(kwargs: dict, column: str, n: int) -> list:
    if column not in kwargs:
        from engine.errors import DataError

        raise DataError(f"the reward needs an '{column}' column in every prompt record (the reference answer); "
                        f"the data has {sorted(k for k in kwargs if k not in ('trainer_state', 'completion_ids', 'log_extra', 'log_metric'))}. "
                        f"Add it, or set the reward's column option.")
    return list(kwargs[column])[:n]


@builtin("exact_answer", "1 when the answer equals the `answer` column (case, punctuation, spacing ignored)", column="answer")
def _exact(options):
    column = options.get("column", "answer")

    def exact_answer(completions, **kwargs):
        refs = _answers(kwargs, column, len(completions))
        return [float(_normalise(completion_text(c)) == _normalise(r)) for c, r in zip(completions, refs)]

    return exact_answer


@builtin("contains_answer", "1 when the answer contains the `answer` column (case, punctuation ignored)", column="answer")
def _contains(options):
    column = options.get("column", "answer")

    def contains_answer(completions, **kwargs):
        refs = _answers(kwargs, column, len(completions))
        return [float(_normalise(r) in _normalise(completion_text(c))) for c, r in zip(completions, refs)]

    return contains_answer


@builtin("length", "1 at the target length, 1/(1+|n-target|/target) elsewhere", target=20, unit="words")
def _length(options):
    # Smooth, never flat: every group of answers of different lengths has a spread to learn from.
    target, unit = float(options.get("target", 20)), options.get("unit", "words")

    def length(completions, **kwargs):
        out = []
        for c in completions:
            text = completion_text(c)
            n = len(text.split()) if unit == "words" else len(text)
            out.append(1.0 / (1.0 + abs(n - target) / target))
        return out

    return length


@builtin("regex", "1 when `pattern` matches the answer (full=true: the whole answer)", pattern="", full=False)
def _regex(options):
    pattern = re.compile(options["pattern"], re.DOTALL)
    match = pattern.fullmatch if options.get("full", False) else pattern.search

    def regex(completions, **kwargs):
        return [float(match(completion_text(c).strip()) is not None) for c in completions]

    return regex


@builtin("repetition", "minus the share of repeated n-grams (0 = none repeated, -1 = all)", n=3)
def _repetition(options):
    size = int(options.get("n", 3))

    def repetition(completions, **kwargs):
        out = []
        for c in completions:
            words = completion_text(c).lower().split()
            grams = [tuple(words[i:i + size]) for i in range(len(words) - size + 1)]
            out.append(-(1.0 - len(set(grams)) / len(grams)) if grams else 0.0)
        return out

    return repetition


def make_builtin(spec) -> Callable:
    """The reward function of a built-in RewardSpec, its options filled with the defaults."""
    b = BUILTINS[spec.target]
    return b.make({**b.options, **spec.options})
