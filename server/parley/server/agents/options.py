"""Generation options of the LLM kinds: which a client may set, their checks, their values.

Clients pass `agent_options` as strings; a profile allows a subset of its kind's
allow-list and supplies defaults. Nothing here accepts URLs, keys, commands or paths.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

MODEL = "model"
TEMPERATURE = "temperature"
MAX_TOKENS = "max_tokens"
LLM_OPTIONS = frozenset({MODEL, TEMPERATURE, MAX_TOKENS})

MAX_TEMPERATURE = 2.0
MAX_TOKENS_LIMIT = 1_000_000
MAX_MODEL_CHARS = 200
# What a model name passed on a command line may look like: no leading dash (it would
# read as a flag), no spaces, no shell or path tricks.
COMMAND_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@+/-]*")


@dataclass(frozen=True, slots=True)
class OptionRules:
    """The options one profile accepts from clients, and the checks on their values."""

    allowed: frozenset[str]
    # When set, model names must match it entirely (the command kind).
    model_pattern: re.Pattern[str] | None = None

    def problems(self, options: Mapping[str, str]) -> dict[str, str]:
        """A description per bad option (an empty dict when all are fine)."""
        problems: dict[str, str] = {}
        for key, value in options.items():
            if key not in self.allowed:
                allowed = sorted(self.allowed)
                problems[key] = (
                    f"not allowed by this agent profile (allowed: {allowed})"
                    if allowed
                    else "this agent profile accepts no options"
                )
                continue
            problem = self.value_problem(key, value)
            if problem:
                problems[key] = problem
        return problems

    def value_problem(self, key: str, value: str) -> str:
        """Why `value` is not acceptable for option `key` ("" when it is)."""
        if key == MODEL:
            if not value.strip() or len(value) > MAX_MODEL_CHARS:
                return f"must be a model name of 1 to {MAX_MODEL_CHARS} characters"
            if not value.isprintable():
                return "must not contain control characters"
            if self.model_pattern is not None and not self.model_pattern.fullmatch(value):
                return "must be letters, digits and . _ : @ + / - (not starting with -)"
        elif key == TEMPERATURE:
            number = _float(value)
            if number is None or not 0.0 <= number <= MAX_TEMPERATURE:
                return f"must be a number from 0 to {MAX_TEMPERATURE:g}"
        elif key == MAX_TOKENS and not (
            value.isascii() and value.isdigit() and 1 <= int(value) <= MAX_TOKENS_LIMIT
        ):
            return f"must be a whole number from 1 to {MAX_TOKENS_LIMIT}"
        return ""


@dataclass(frozen=True, slots=True)
class Generation:
    """The options of one call: the profile's defaults overridden by the participant's."""

    model: str = ""
    temperature: float | None = None
    max_tokens: int | None = None

    @classmethod
    def resolve(cls, defaults: Mapping[str, str], options: Mapping[str, str]) -> Generation:
        # Options were validated when the participant was added; defaults at start-up.
        merged = {**defaults, **options}
        temperature = merged.get(TEMPERATURE)
        max_tokens = merged.get(MAX_TOKENS)
        return cls(
            model=merged.get(MODEL, ""),
            temperature=float(temperature) if temperature is not None else None,
            max_tokens=int(max_tokens) if max_tokens is not None else None,
        )


def _float(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None
