"""Cross-functional team formation: the fewest, best-scored available agents covering every skill.

Pure: agents are registry records, loads come from the caller. The choice is exact (a set-cover
dynamic programme over skill masks) while that stays small — up to :data:`EXACT_SKILLS_LIMIT`
required skills and :data:`EXACT_WORK_LIMIT` states — else greedy (most new skills, then score);
the explanation says which.

Objective, in order: cover every required skill; use as few agents as possible; maximise the sum
of the members' scores (the allocator's five-factor score of a task needing all the skills, so
skills, workload, resources and collaboration preferences all count). Unhealthy and full agents
are left out, with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from stellar_graph._scoring_python import agent_skill_levels
from stellar_graph.collaboration.models import TeamFormationError, TeamRequirements
from stellar_graph.models import DEFAULT_CAPACITY, parse_model
from stellar_graph.scoring import AgentPool, score_task

__all__ = ["EXACT_SKILLS_LIMIT", "EXACT_WORK_LIMIT", "Team", "form_team"]

EXACT_SKILLS_LIMIT = 16
"""Above this many required skills the cover is greedy."""
EXACT_WORK_LIMIT = 1 << 21
"""The exact cover visits at most (2**skills x distinct candidates) states; above this, greedy."""


@dataclass(frozen=True)
class Team:
    """A formed team.

    Attributes:
        agent_ids: the members, best score first.
        coverage: required skill -> the member covering it at the highest level.
        scores: member -> its score for the requirements.
        excluded: agent id -> why it is not a candidate.
        method: ``"exact"`` or ``"greedy"``.
        explanation: a human explanation of the choice.
    """

    agent_ids: list[str]
    coverage: dict[str, str]
    scores: dict[str, float]
    excluded: dict[str, str] = field(default_factory=dict)
    method: str = "exact"
    explanation: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The team as a JSON-able dict."""
        return {
            "agent_ids": list(self.agent_ids),
            "coverage": dict(self.coverage),
            "scores": dict(self.scores),
            "excluded": dict(self.excluded),
            "method": self.method,
            "explanation": self.explanation,
        }


def form_team(
    requirements: TeamRequirements | Mapping[str, Any],
    agents: Mapping[str, Mapping[str, Any]],
    *,
    weights: Mapping[str, float],
    now: datetime,
    loads: Mapping[str, int] | None = None,
) -> Team:
    """Choose the team.

    Args:
        requirements: ``required_skills`` (or ``skills``), optional ``candidates``, ``max_size``.
        agents: the registry, agent id -> record.
        weights: the allocator's factor weights.
        now: the current time (deadline factor).
        loads: agent id -> active tasks.

    Returns:
        The team, with an explanation.

    Raises:
        InvalidInputError: bad requirements.
        TeamFormationError: some skill is held by no available agent (named in the message and
            in ``uncovered``), or covering them needs more than ``max_size`` agents.
    """
    req = parse_model(TeamRequirements, requirements, kind="team requirements")
    skills = req.required_skills
    loads = loads or {}
    excluded = _exclusions(req, agents, loads, skills)
    pool_ids = [a for a in agents if a not in excluded]
    scores = _scores(req, [dict(agents[a], load=loads.get(a, 0)) for a in pool_ids], weights, now)
    masks = {a: _mask(agents[a], skills) for a in pool_ids}
    reachable = 0
    for m in masks.values():
        reachable |= m
    uncovered = [s for i, s in enumerate(skills) if not reachable >> i & 1]
    if uncovered:
        raise _uncovered_error(uncovered, agents, excluded)
    best = _best_per_mask(masks, scores)
    exact = len(skills) <= EXACT_SKILLS_LIMIT and (1 << len(skills)) * len(best) <= EXACT_WORK_LIMIT
    members = (
        _exact_cover(best, scores, len(skills))
        if exact
        else _greedy_cover(best, scores, len(skills))
    )
    members.sort(key=lambda a: (-scores[a], a))
    if req.max_size is not None and len(members) > req.max_size:
        raise TeamFormationError(
            f"Covering {skills!r} needs {len(members)} agents ({members!r}) but max_size is "
            f"{req.max_size}. Fix: raise max_size, drop a skill, or register agents with broader skills.",
            uncovered=[],
            reasons=excluded,
        )
    coverage = {s: _holder(members, s, agents, scores) for s in skills}
    method = "exact" if exact else "greedy"
    return Team(
        members,
        coverage,
        {a: round(scores[a], 4) for a in members},
        excluded,
        method,
        _explain(members, coverage, scores, excluded, method, len(pool_ids)),
    )


def _holder(
    members: Sequence[str],
    skill: str,
    agents: Mapping[str, Mapping[str, Any]],
    scores: Mapping[str, float],
) -> str:
    """The member holding ``skill`` at the highest level (then the best score, then the id)."""
    return min(
        members, key=lambda a: (-agent_skill_levels(agents[a]).get(skill, 0.0), -scores[a], a)
    )


def _exclusions(
    req: TeamRequirements,
    agents: Mapping[str, Mapping[str, Any]],
    loads: Mapping[str, int],
    skills: Sequence[str],
) -> dict[str, str]:
    out: dict[str, str] = {}
    allowed = set(req.candidates) if req.candidates is not None else None
    for agent_id, record in agents.items():
        if allowed is not None and agent_id not in allowed:
            out[agent_id] = "not a candidate"
        elif not record.get("healthy", True):
            out[agent_id] = "unhealthy"
        elif loads.get(agent_id, 0) >= int(record.get("capacity", DEFAULT_CAPACITY)):
            out[agent_id] = (
                f"no capacity ({loads.get(agent_id, 0)}/{record.get('capacity', 3)} tasks)"
            )
        elif not _mask(record, skills):
            out[agent_id] = "holds none of the required skills"
    return out


def _mask(record: Mapping[str, Any], skills: Sequence[str]) -> int:
    levels = agent_skill_levels(record)
    return sum(1 << i for i, s in enumerate(skills) if levels.get(s, 0.0) > 0)


def _scores(
    req: TeamRequirements,
    records: list[dict[str, Any]],
    weights: Mapping[str, float],
    now: datetime,
) -> dict[str, float]:
    if not records:
        return {}
    task = {"id": "team", "description": req.description, "required_skills": req.required_skills}
    scored = score_task(task, AgentPool.from_records(records), weights=weights, now=now)
    return {a: float(t) for a, t in zip(scored.agent_ids, scored.total, strict=True)}


def _best_per_mask(masks: Mapping[str, int], scores: Mapping[str, float]) -> dict[int, str]:
    # A minimal cover never holds two agents covering the same skills: keep the best of each.
    best: dict[int, str] = {}
    for agent, m in masks.items():
        if m and (m not in best or (scores[agent], best[m]) > (scores[best[m]], agent)):
            best[m] = agent
    return best


def _exact_cover(best: Mapping[int, str], scores: Mapping[str, float], n: int) -> list[str]:
    """Fewest agents, then highest total score: a DP over covered-skill masks."""
    full = (1 << n) - 1
    # dp[mask] = (agents used, -total score, members) of the best way to cover exactly `mask`
    dp: dict[int, tuple[int, float, tuple[str, ...]]] = {0: (0, 0.0, ())}
    frontier = [0]
    while frontier and full not in dp:
        nxt: list[int] = []
        for mask in frontier:
            count, neg, members = dp[mask]
            for m, agent in best.items():
                new = mask | m
                if new == mask:
                    continue
                cand = (count + 1, neg - scores[agent], (*members, agent))
                if new not in dp or cand < dp[new]:
                    if new not in dp:
                        nxt.append(new)
                    dp[new] = cand
        frontier = nxt
    return list(dp[full][2])


def _greedy_cover(best: Mapping[int, str], scores: Mapping[str, float], n: int) -> list[str]:
    full, covered, members = (1 << n) - 1, 0, []
    while covered != full:
        mask, agent = max(
            best.items(), key=lambda kv: (bin(kv[0] & ~covered).count("1"), scores[kv[1]], kv[1])
        )
        covered |= mask
        members.append(agent)
    return members


def _uncovered_error(
    uncovered: list[str], agents: Mapping[str, Mapping[str, Any]], excluded: Mapping[str, str]
) -> TeamFormationError:
    holders = {
        a: why for a, why in excluded.items() if set(uncovered) & set(agent_skill_levels(agents[a]))
    }
    detail = (
        "; ".join(f"{a} has some but is {why}" for a, why in sorted(holders.items()))
        or "no registered agent holds them"
    )
    return TeamFormationError(
        f"No available agent covers the skill(s) {uncovered!r} ({detail}). Fix: register an agent "
        f"with them, free or heal the agents listed, or drop them from the requirements.",
        uncovered=uncovered,
        reasons=excluded,
    )


def _explain(
    members: Sequence[str],
    coverage: Mapping[str, str],
    scores: Mapping[str, float],
    excluded: Mapping[str, str],
    method: str,
    candidates: int,
) -> str:
    by_member: dict[str, list[str]] = {}
    for skill, agent in coverage.items():
        by_member.setdefault(agent, []).append(skill)
    lines = [
        f"{len(members)} agent(s) cover all {len(coverage)} skill(s), chosen among {candidates} "
        f"available ({method}: fewest agents, then highest total score)."
    ]
    lines += [
        f"- {a} (score {scores[a]:.3f}) covers {', '.join(by_member.get(a, [])) or 'shared skills'}"
        for a in members
    ]
    if excluded:
        lines.append("left out: " + "; ".join(f"{a}: {why}" for a, why in sorted(excluded.items())))
    return "\n".join(lines)
