"""Seeded synthetic agents and tasks for the allocation benchmarks (and tests).

32 skills in 8 domains of 4. Each agent has 3 skills of its domain plus 1 random skill (levels in
[0.4, 1]; a third of the agents give a plain list, level 1.0), capacity 3-10, a random load
(about 1 in 8 agents full), resources (gpu, memory_gb, api_quota), speed 0.5-2.0, prompt tokens
200-2,000, a few preferred / avoided partners, and 2 % unhealthy. Tasks need 1-3 skills of one
domain (sometimes all), some resources, a deadline (none, tight, loose or already past), sometimes
a token budget and preferred agent types, and optionally dependencies on earlier tasks (a DAG).

Records have the shape of ``AgentProfile.model_dump(mode="json")`` (+ ``load``, ``healthy``,
``prompt_tokens``) and ``Task.model_dump(mode="json")``.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["DOMAINS", "NOW", "SKILLS", "TYPES", "make_agents", "make_tasks"]

NOW = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)
DOMAINS: tuple[str, ...] = (
    "research",
    "writing",
    "coding",
    "data",
    "design",
    "ops",
    "legal",
    "sales",
)
SKILLS: dict[str, tuple[str, ...]] = {
    d: tuple(f"{d}_{s}" for s in ("core", "analysis", "review", "planning")) for d in DOMAINS
}
TYPES: tuple[str, ...] = tuple(f"{d.capitalize()}Agent" for d in DOMAINS)
_ALL_SKILLS = tuple(s for group in SKILLS.values() for s in group)


def make_agents(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` agent records, reproducible for a given ``seed``."""
    rng = random.Random(seed)
    agents = []
    for i in range(n):
        d = rng.randrange(len(DOMAINS))
        skills = [*rng.sample(SKILLS[DOMAINS[d]], 3), rng.choice(_ALL_SKILLS)]
        capability: list[str] | dict[str, float]
        if rng.random() < 1 / 3:
            capability = list(dict.fromkeys(skills))
        else:
            capability = {s: round(rng.uniform(0.4, 1.0), 3) for s in skills}
        capacity = rng.randint(3, 10)
        load = capacity if rng.random() < 0.125 else rng.randint(0, capacity - 1)
        agents.append(
            {
                "agent_id": f"agent-{i:05d}",
                "agent_type": TYPES[d],
                "capabilities": capability,
                "specializations": [],
                "capacity": capacity,
                "resources": {
                    "gpu": float(rng.choice((0, 0, 1, 2, 4))),
                    "memory_gb": float(rng.choice((8, 16, 32, 64))),
                    "api_quota": float(rng.randint(0, 1000)),
                },
                "collaboration_preferences": {
                    "preferred_partners": [f"agent-{rng.randrange(n):05d}" for _ in range(2)],
                    "avoided_partners": [f"agent-{rng.randrange(n):05d}"]
                    if rng.random() < 0.3
                    else [],
                },
                "speed": round(rng.uniform(0.5, 2.0), 3),
                "reliability": round(rng.uniform(0.7, 0.99), 3),
                "load": load,
                "healthy": rng.random() >= 0.02,
                "prompt_tokens": rng.randint(200, 2000),
            }
        )
    return agents


def make_tasks(
    n: int, seed: int = 1, *, now: datetime = NOW, dependency_rate: float = 0.0
) -> list[dict[str, Any]]:
    """``n`` task records, reproducible for a given ``seed``.

    Args:
        n: number of tasks.
        seed: random seed.
        now: the reference time for deadlines.
        dependency_rate: probability that a task depends on 1-2 earlier tasks (0 = independent).
    """
    rng = random.Random(seed)
    tasks = []
    for i in range(n):
        domain = SKILLS[rng.choice(DOMAINS)]
        minutes = float(rng.choice((15, 30, 60, 90, 120, 240)))
        kind = rng.random()
        deadline = None
        if kind < 0.55:
            # Between "hopeless" and "ample": the deadline factor discriminates by speed.
            deadline = now + timedelta(minutes=minutes * rng.uniform(0.5, 4.0))
        elif kind < 0.6:
            deadline = now - timedelta(minutes=rng.randint(1, 600))
        resources: dict[str, float] = {}
        if rng.random() < 0.3:
            resources["gpu"] = float(rng.choice((1, 2)))
        if rng.random() < 0.5:
            resources["memory_gb"] = float(rng.choice((8, 16, 32)))
        deps: list[str] = []
        if i and rng.random() < dependency_rate:
            deps = sorted({f"task-{rng.randrange(i):05d}" for _ in range(rng.randint(1, 2))})
        tasks.append(
            {
                "id": f"task-{i:05d}",
                "description": f"synthetic task {i}",
                "priority": rng.choice(("low", "medium", "medium", "high", "critical")),
                "deadline": None if deadline is None else deadline.isoformat(),
                "required_skills": rng.sample(domain, rng.randint(1, 3)),
                "estimated_duration_minutes": minutes,
                "resources": resources,
                "dependencies": deps,
                "success_criteria": [],
                "token_budget": rng.choice((None, None, None, 1500, 4000)),
                "preferred_agents": [rng.choice(TYPES)] if rng.random() < 0.15 else [],
                "require_all_skills": rng.random() < 0.3,
            }
        )
    return tasks
