"""Per-pair reference scorer and the small definitions shared with the vectorised one.

:func:`score_pair_python` is deliberately plain (dicts and loops, no numpy): it is the benchmark
baseline and the test oracle for :mod:`stellar_graph.scoring`. The helpers here (weights
validation, skill levels, time parsing, reason texts) are shared so that both implementations use
the same words and the same parsing rules.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from stellar_graph.errors import ConfigurationError
from stellar_graph.models import DEFAULT_CAPACITY, FACTORS

__all__ = [
    "TIE_EPS",
    "agent_skill_levels",
    "minutes_left",
    "parse_when",
    "score_pair_python",
    "validate_weights",
]

TIE_EPS = 1e-12
"""Totals closer than this are a tie (broken by lower load/capacity, then agent id)."""

_WEIGHT_SUM_TOL = 1e-6


def validate_weights(weights: Mapping[str, float]) -> tuple[float, float, float, float, float]:
    """Check factor weights and return them as a tuple in ``FACTORS`` order.

    Args:
        weights: factor name -> weight; must name every factor in ``FACTORS``, nothing else, with
            finite non-negative values summing to 1 (within 1e-6).

    Returns:
        The five weights in ``FACTORS`` order.

    Raises:
        ConfigurationError: the weights are not a mapping, miss or add a factor, hold a bad value
            or do not sum to 1.
    """
    if not isinstance(weights, Mapping):
        raise ConfigurationError(
            f"weights must be a mapping of {list(FACTORS)} to floats, got {weights!r}",
            field="weights",
            value=weights,
        )
    missing = [f for f in FACTORS if f not in weights]
    unknown = sorted(str(k) for k in weights if k not in FACTORS)
    if missing or unknown:
        raise ConfigurationError(
            f"weights {dict(weights)!r} must name exactly the factors {list(FACTORS)}; "
            f"missing: {missing}, unknown: {unknown}. Fix: give one weight per factor.",
            field="weights",
            value=weights,
        )
    try:
        values = tuple(float(weights[f]) for f in FACTORS)
    except (TypeError, ValueError):
        raise ConfigurationError(
            f"weights {dict(weights)!r} must be numbers", field="weights", value=weights
        ) from None
    if any(not math.isfinite(v) or v < 0 for v in values):
        raise ConfigurationError(
            f"weights {dict(weights)!r} must be finite and >= 0", field="weights", value=weights
        )
    total = sum(values)
    if abs(total - 1.0) > _WEIGHT_SUM_TOL:
        raise ConfigurationError(
            f"weights {dict(weights)!r} must sum to 1, they sum to {total:.9g}. "
            f"Fix: rescale them (divide each by {total:.9g}).",
            field="weights",
            value=weights,
        )
    return values  # type: ignore[return-value]


def agent_skill_levels(agent: Mapping[str, Any]) -> dict[str, float]:
    """Skill -> level of an agent record, by the rule of ``AgentProfile.skill_levels()``.

    Args:
        agent: an ``AgentProfile.model_dump(mode="json")`` dict (``capabilities`` and
            ``specializations`` are lists, level 1.0, or mappings of explicit levels).

    Returns:
        Every skill with its level; a skill in both groups keeps the higher level.
    """
    levels: dict[str, float] = {}
    for key in ("capabilities", "specializations"):
        group = agent.get(key) or ()
        items = group.items() if isinstance(group, Mapping) else ((s, 1.0) for s in group)
        for skill, level in items:
            levels[skill] = max(float(level), levels.get(skill, 0.0))
    return levels


def parse_when(value: object, *, field: str = "deadline") -> datetime | None:
    """Parse an ISO-8601 string (or pass a datetime through) as an aware UTC-default datetime.

    Args:
        value: ``None``, a ``datetime`` or an ISO-8601 string (``Z`` suffix allowed).
        field: the name used in the error message.

    Returns:
        ``None`` for ``None``; else an aware datetime (naive values are taken as UTC).

    Raises:
        ConfigurationError: the value is neither a datetime nor an ISO-8601 string.
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        when = value
    elif isinstance(value, str):
        try:
            when = datetime.fromisoformat(value)
        except ValueError:
            raise ConfigurationError(
                f"{field} {value!r} is not an ISO-8601 datetime "
                f"(for example '2030-01-31T17:00:00Z')",
                field=field,
                value=value,
            ) from None
    else:
        raise ConfigurationError(
            f"{field} {value!r} must be an ISO-8601 string or a datetime",
            field=field,
            value=value,
        )
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def minutes_left(deadline: datetime, now: datetime) -> float:
    """Minutes from ``now`` (naive = UTC) until ``deadline``; negative once it passed."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    return (deadline - now).total_seconds() / 60.0


def fmt_num(x: float) -> str:
    """Short number for messages: ``2.0`` -> ``"2"``, ``1.25`` -> ``"1.25"``."""
    x = float(x)
    return str(int(x)) if x.is_integer() and abs(x) < 1e15 else f"{x:.6g}"


def missing_skills_reason(names: Sequence[str]) -> str:
    """Reason text for missing skills."""
    return "missing skill(s): " + ", ".join(names)


def resource_reason(name: str, need: float, have: float) -> str:
    """Reason text for one resource shortfall."""
    return f"resource shortfall: {name} needs {fmt_num(need)}, has {fmt_num(have)}"


def token_reason(budget: int, estimated: int) -> str:
    """Reason text for a prompt that does not fit the task's token budget."""
    return f"token budget {budget} < estimated {estimated} prompt tokens"


def capacity_reason(load: int, capacity: int) -> str:
    """Reason text for a full agent."""
    return f"no capacity ({load}/{capacity} tasks)"


def unique_related(related_agents: Sequence[str]) -> list[str]:
    """The related agent ids, de-duplicated in order.

    Raises:
        ConfigurationError: a single string was given instead of a sequence of ids.
    """
    if isinstance(related_agents, str):
        raise ConfigurationError(
            f"related_agents must be a sequence of agent ids, got the string {related_agents!r}; "
            f"wrap it in a list",
            field="related_agents",
            value=related_agents,
        )
    return list(dict.fromkeys(related_agents))


def deadline_phrase(left: float | None, predicted: float) -> str:
    """Explanation phrase of the deadline factor (minutes left, predicted minutes)."""
    if left is None:
        return f"no deadline; about {predicted:.0f} min"
    if left <= 0:
        return f"overdue by {-left:.0f} min (scores 0 for every agent)"
    ratio = left / predicted
    if ratio >= 1:
        return f"finishes {ratio:.1f}x before the deadline ({predicted:.0f} of {left:.0f} min)"
    return f"likely late: needs {predicted:.0f} min, {left:.0f} min left"


def collaboration_phrase(preferred: bool | None, liked: int, disliked: int, related: int) -> str:
    """Explanation phrase of the collaboration factor (``preferred`` None: no preference)."""
    if preferred is None:
        text = "no preference given"
    else:
        text = "preferred agent" if preferred else "not among the preferred agents"
    if related:
        text += (
            f"; {liked} preferred and {disliked} avoided partner(s) "
            f"among {related} related agent(s)"
        )
    return text


# ---------------------------------------------------------------------------- per-pair oracle


def score_pair_python(
    task: Mapping[str, Any],
    agent: Mapping[str, Any],
    *,
    weights: Mapping[str, float],
    now: datetime,
    task_tokens: int = 0,
    related_agents: Sequence[str] = (),
    duration_factor: float = 1.0,
) -> tuple[float | None, dict[str, float], str | None]:
    """Score one task against one agent record, the plain way (baseline and test oracle).

    Implements exactly the definitions of :func:`stellar_graph.scoring.score_task`.

    Args:
        task: a ``Task.model_dump(mode="json")`` dict.
        agent: an ``AgentProfile.model_dump(mode="json")`` dict plus optional ``load``,
            ``healthy`` and ``prompt_tokens``.
        weights: factor weights (see :func:`validate_weights`).
        now: the current time (naive = UTC).
        task_tokens: prompt tokens of the task itself.
        related_agents: agents that worked on the task's dependencies or collaborators.
        duration_factor: upper-bound multiplier on the predicted duration.

    Returns:
        ``(total, factors, reason)``: ``total`` is ``None`` and ``reason`` the "; "-joined
        reasons when the agent is infeasible; ``factors`` is always filled.

    Raises:
        ConfigurationError: bad weights or deadline.
    """
    w = validate_weights(weights)
    reasons: list[str] = []
    factors = {
        "skills": _py_skills(task, agent, reasons),
        "resources": _py_resources(task, agent, task_tokens, reasons),
        "workload": _py_workload(agent, reasons),
        "deadline": _py_deadline(task, agent, now, duration_factor),
        "collaboration": _py_collaboration(task, agent, related_agents),
    }
    if reasons:
        return None, factors, "; ".join(reasons)
    total = 0.0
    for weight, name in zip(w, FACTORS, strict=True):
        total += weight * factors[name]
    return total, factors, None


def _py_skills(task: Mapping[str, Any], agent: Mapping[str, Any], reasons: list[str]) -> float:
    required = list(task.get("required_skills") or ())
    if not required:
        return 1.0
    levels = agent_skill_levels(agent)
    got = [levels.get(r, 0.0) for r in required]
    missing = [r for r, lv in zip(required, got, strict=True) if lv <= 0]
    if (missing and task.get("require_all_skills", False)) or len(missing) == len(required):
        reasons.append(missing_skills_reason(missing))
    total = 0.0
    for lv in got:
        total += lv
    return total / len(required)


def _py_resources(
    task: Mapping[str, Any], agent: Mapping[str, Any], task_tokens: int, reasons: list[str]
) -> float:
    terms: list[float] = []
    available = agent.get("resources") or {}
    for name, req in (task.get("resources") or {}).items():
        req = float(req)
        if req <= 0:
            continue
        have = float(available.get(name, 0.0))
        if have < req:
            reasons.append(resource_reason(name, req, have))
        terms.append(min(1.0, have / (2 * req)))
    budget = task.get("token_budget")
    if budget:
        est = int(task_tokens) + int(agent.get("prompt_tokens", 0))
        if est > budget:
            reasons.append(token_reason(budget, est))
        terms.append(1.0 if est == 0 else min(1.0, budget / (2 * est)))
    if not terms:
        return 1.0
    total = 0.0
    for term in terms:
        total += term
    return total / len(terms)


def _py_workload(agent: Mapping[str, Any], reasons: list[str]) -> float:
    load = int(agent.get("load", 0))
    capacity = int(agent.get("capacity", DEFAULT_CAPACITY))
    if not agent.get("healthy", True):
        reasons.append("unhealthy")
    if load >= capacity:
        reasons.append(capacity_reason(load, capacity))
    return min(1.0, max(0.0, 1.0 - load / capacity))


def _py_deadline(
    task: Mapping[str, Any], agent: Mapping[str, Any], now: datetime, duration_factor: float
) -> float:
    deadline = parse_when(task.get("deadline"))
    if deadline is None:
        return 1.0
    left = minutes_left(deadline, now)
    if left <= 0:
        return 0.0
    est = float(task.get("estimated_duration_minutes", 60.0))
    predicted = est / float(agent.get("speed", 1.0)) * duration_factor
    return min(1.0, max(0.0, left / predicted - 1.0))


def _py_collaboration(
    task: Mapping[str, Any], agent: Mapping[str, Any], related_agents: Sequence[str]
) -> float:
    preferred = list(task.get("preferred_agents") or ())
    c = 0.5
    if preferred:
        c = 1.0 if agent["agent_id"] in preferred or agent.get("agent_type") in preferred else 0.0
    related = unique_related(related_agents)
    if related:
        prefs = agent.get("collaboration_preferences") or {}
        partners = set(prefs.get("preferred_partners") or ())
        avoided = set(prefs.get("avoided_partners") or ())
        liked = sum(1 for r in related if r in partners)
        disliked = sum(1 for r in related if r in avoided)
        c = min(1.0, max(0.0, c + 0.5 * ((liked - disliked) / len(related))))
    return c
