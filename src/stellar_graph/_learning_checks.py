"""Argument and state checks shared by the learning modules (private)."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

from stellar_graph.errors import ConfigurationError, InvalidInputError

MODES = ("static", "dynamic", "adaptive")
STRATEGIES = ("thompson", "epsilon_decay", "greedy", "constant_epsilon")


def check_number(
    field: str, value: object, low: float, high: float, *, open_low: bool = False
) -> float:
    """Return ``value`` as a float if it is a finite real in [low, high] (or (low, high])."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    x = float(value) if ok else math.nan  # type: ignore[arg-type]
    inside = math.isfinite(x) and (x > low if open_low else x >= low) and x <= high
    if not inside:
        bracket = "(" if open_low else "["
        raise ConfigurationError(
            f"{field}={value!r} is invalid. Fix: pass a finite number in {bracket}{low:g}, {high:g}].",
            field=field,
            value=value,
        )
    return x


def check_int(field: str, value: object, low: int) -> int:
    """Return ``value`` if it is an integer >= ``low`` (bools rejected)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < low:
        raise ConfigurationError(
            f"{field}={value!r} is invalid. Fix: pass an integer >= {low}.",
            field=field,
            value=value,
        )
    return int(value)


def check_choice(field: str, value: object, allowed: tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``allowed``."""
    if not isinstance(value, str) or value not in allowed:
        raise ConfigurationError(
            f"{field}={value!r} is not supported. Fix: use one of {list(allowed)}.",
            field=field,
            value=value,
        )
    return value


def check_agent_id(value: object, field: str = "agent_id") -> str:
    """Return ``value`` if it is a non-empty string."""
    if not isinstance(value, str) or not value:
        raise InvalidInputError(
            f"{field}={value!r} is not a valid agent id. Fix: pass a non-empty string.",
            errors=[{"field": field, "value": value, "message": "must be a non-empty str"}],
        )
    return value


def check_skills(value: object) -> tuple[str, ...]:
    """Return the skills as a de-duplicated tuple of non-empty strings."""
    if isinstance(value, str) or not isinstance(value, (list, tuple, set, frozenset)):
        raise InvalidInputError(
            f"skills={value!r} must be a list of skill names. Fix: pass e.g. ['analysis'].",
            errors=[{"field": "skills", "value": value, "message": "must be a list of str"}],
        )
    skills = tuple(dict.fromkeys(value))
    if any(not isinstance(s, str) or not s for s in skills):
        raise InvalidInputError(
            f"skills={value!r} holds an empty or non-string name. Fix: pass non-empty strings.",
            errors=[{"field": "skills", "value": value, "message": "names must be non-empty str"}],
        )
    return skills


def check_unit(field: str, value: object) -> float:
    """Return ``value`` as a float in [0, 1] (an input error otherwise)."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    x = float(value) if ok else math.nan  # type: ignore[arg-type]
    if not (0.0 <= x <= 1.0):
        raise InvalidInputError(
            f"{field}={value!r} is invalid. Fix: pass a number in [0, 1].",
            errors=[{"field": field, "value": value, "message": "must be in [0, 1]"}],
        )
    return x


def check_state(kind: str, d: object, version: int) -> Mapping[str, Any]:
    """Check that ``d`` is a state dict of ``kind`` at ``version`` and return it."""
    got = d.get("version") if isinstance(d, Mapping) else type(d).__name__
    if not isinstance(d, Mapping) or d.get("kind") != kind or got != version:
        raise ConfigurationError(
            f"Not a {kind} state (version {got!r}, expected {version}). "
            f"Fix: pass the dict returned by {kind}.to_dict().",
            field="version",
            value=got,
        )
    return d


def bad_state(kind: str, exc: Exception) -> ConfigurationError:
    """The error raised when a state dict of ``kind`` has the right version but bad content."""
    return ConfigurationError(
        f"Invalid {kind} state: {exc!s}. Fix: pass the dict returned by {kind}.to_dict(), unmodified."
    )
