"""Simulated agent work: what runs in place of the LLM call when no model is configured.

The simulation is seeded by (seed, agent id, task id, attempt) through a stable hash, so a run
replays identically in another process (Python's ``hash()`` is salted per process; sha256 is not).
Success probability and duration come from the agent's profile: its reliability, how well its
skills match the task and its speed. Every simulated answer says so.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["SimulatedOutcome", "simulate_work", "skill_match"]


@dataclass(frozen=True)
class SimulatedOutcome:
    """What a simulated agent did."""

    success: bool
    duration_minutes: float
    p_success: float
    result: str
    criteria_met: list[str]
    confidence: float


def skill_match(task: Mapping[str, Any], agent: Mapping[str, Any]) -> float:
    """Mean skill level of the agent over the task's required skills, in [0, 1]."""
    levels: dict[str, float] = {}
    for group in (agent.get("capabilities") or [], agent.get("specializations") or []):
        items = group.items() if isinstance(group, Mapping) else ((s, 1.0) for s in group)
        for skill, level in items:
            levels[skill] = max(float(level), levels.get(skill, 0.0))
    required = task.get("required_skills") or []
    if not required:
        return 1.0
    return sum(levels.get(s, 0.0) for s in required) / len(required)


def _rng(seed: int, *parts: object) -> random.Random:
    digest = hashlib.sha256(":".join(str(p) for p in (seed, *parts)).encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def simulate_work(
    task: Mapping[str, Any], agent: Mapping[str, Any], *, attempt: int = 1, seed: int = 0
) -> SimulatedOutcome:
    """Simulate one attempt of ``agent`` at ``task``.

    ``p_success = reliability * (0.6 + 0.4 * skill_match)``; duration is the task's estimate
    divided by the agent's speed, times log-normal noise (median +10%, sigma 0.3).
    """
    rng = _rng(seed, agent["agent_id"], task["id"], attempt)
    p = float(agent.get("reliability", 0.9)) * (0.6 + 0.4 * skill_match(task, agent))
    success = rng.random() < p
    estimate = float(task.get("estimated_duration_minutes", 60.0))
    duration = estimate / float(agent.get("speed", 1.0)) * math.exp(rng.gauss(0.1, 0.3))
    criteria = list(task.get("success_criteria") or [])
    who = f"{agent['agent_id']} ({agent.get('agent_type', 'agent')})"
    if success:
        result = f"[simulated] {who} completed {task['id']!r}: {task['description'][:120]}"
        met, confidence = criteria, round(0.6 + 0.4 * rng.random(), 3)
    else:
        result = f"[simulated] {who} could not complete {task['id']!r} (p_success={p:.2f})"
        met, confidence = [], round(0.3 * rng.random(), 3)
    return SimulatedOutcome(success, round(duration, 3), round(p, 4), result, met, confidence)
