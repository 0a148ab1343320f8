"""Checks of config values, used by the config dataclasses' ``__post_init__``.

Each raises :class:`ConfigError` (a ValueError): one line naming the field, the value and what is
allowed; the command line replaces the field by its flag (``--lr: must be ...``).
"""

from __future__ import annotations

import math
from typing import Any, get_args


class ConfigError(ValueError):
    """A config value out of range or not allowed; ``option`` names the field."""

    def __init__(self, option: str, problem: str) -> None:
        super().__init__(f"{option}: {problem}")
        self.option = option  # field name (the CLI replaces it by the flag)
        self.problem = problem  # what is wrong, without the option's name


def check_count(obj: Any, name: str, low: int = 0, high: int | None = None) -> None:
    """``obj.name`` must be a whole number in [low, high]."""
    value = getattr(obj, name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(name, f"must be a whole number, got {value!r}")
    if value < low or (high is not None and value > high):
        allowed = f">= {low}" if high is None else f"between {low} and {high:,}"
        raise ConfigError(name, f"must be {allowed}, got {value}")


def check_number(
    obj: Any,
    name: str,
    low: float = -math.inf,
    high: float = math.inf,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> None:
    """``obj.name`` must be a finite number in the interval; ints become floats."""
    value = getattr(obj, name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(name, f"must be a number, got {value!r}")
    value = float(value)
    below = value <= low if low_open else value < low
    above = value >= high if high_open else value > high
    if not math.isfinite(value) or below or above:
        allowed = _interval(low, high, low_open, high_open)
        raise ConfigError(name, f"must be a finite number {allowed}, got {value!r}")
    object.__setattr__(obj, name, value)


def _interval(low: float, high: float, low_open: bool, high_open: bool) -> str:
    if math.isinf(high):
        return f"{'>' if low_open else '>='} {low:g}"
    return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"


def check_choice(obj: Any, name: str, literal: Any) -> None:
    """``obj.name`` must be one of the values of the ``Literal`` type ``literal``."""
    value, allowed = getattr(obj, name), get_args(literal)
    if value not in allowed:
        names = ", ".join(repr(a) for a in allowed)
        raise ConfigError(name, f"{value!r} is not one of {names}")


def check_bool(obj: Any, name: str, optional: bool = False) -> None:
    value = getattr(obj, name)
    if not (isinstance(value, bool) or (optional and value is None)):
        raise ConfigError(name, f"must be true or false, got {value!r}")


def check_pair(obj: Any, name: str, kind: type) -> tuple:
    value = getattr(obj, name)
    if isinstance(value, str | bytes) or not hasattr(value, "__len__") or len(value) != 2:
        raise ConfigError(name, f"must be two numbers, got {value!r}")
    try:
        out = tuple(kind(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(name, f"must be two numbers, got {value!r}") from None
    if kind is int and out != tuple(value):
        raise ConfigError(name, f"must be two whole numbers, got {value!r}")
    return out
