"""The team votes on its synthesis: one ballot per agent, then the pure tally of :mod:`consensus`.

With a model, each voter makes one structured call (:class:`~.models.CollaborationVote`, prompt
``prompts/voter.md``) bounded by ``llm.timeout_seconds`` and by what is left of the consensus
window. When that call fails the voter still votes, deterministically, and the ballot records the
fallback; a call still unanswered when the window closes is a late vote (ignored and counted).

The deterministic vote (simulated agents, or fallback) reads the synthesis and the agent's
profile: *support* is the fraction of success criteria met times the fraction of subtasks done;
an agent approves when support reaches its bar, 0.5, or 0.75 for reviewers (an agent holding one
of :data:`STRICT_SKILLS`), so critics are harder to convince.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage

from stellar_graph._scoring_python import agent_skill_levels
from stellar_graph.collaboration._llm import call_structured
from stellar_graph.collaboration.models import CollaborationVote
from stellar_graph.consensus import ABSTAIN, Ballot, Decision, Proposal, Vote
from stellar_graph.prompts import load_prompt
from stellar_graph.simulation import skill_match

__all__ = [
    "STRICT_SKILLS",
    "cast_votes",
    "competence",
    "deterministic_vote",
    "synthesis_proposal",
    "tally",
    "voter_prompt",
]

STRICT_SKILLS = frozenset({"critical_review", "red_teaming", "risk_analysis", "security"})
STANDARD_BAR, STRICT_BAR = 0.5, 0.75


def competence(agent: Mapping[str, Any], skills: Sequence[str]) -> float:
    """The probability that ``agent`` judges right, for the ``weighted`` rule.

    ``0.5 + 0.45 x`` its mean level over ``skills`` (so in [0.5, 0.95]: no agent counts
    against its own vote, an expert counts most).
    """
    return round(0.5 + 0.45 * skill_match({"required_skills": list(skills)}, agent), 6)


def synthesis_proposal(collab_id: str) -> Proposal:
    """The question every collaboration ends with."""
    return Proposal(
        f"{collab_id}:synthesis", "Does the team's synthesis meet the goal's success criteria?"
    )


def deterministic_vote(agent: Mapping[str, Any], synthesis: Mapping[str, Any]) -> dict[str, Any]:
    """Vote from the synthesis and the agent's profile (no model).

    Returns:
        ``{"choice", "reason", "confidence"}``.
    """
    criteria = synthesis.get("criteria") or {}
    met = [c for c, v in criteria.items() if v.get("status") == "met"]
    counts = synthesis.get("counts") or {}
    done, total = int(counts.get("done", 0)), max(int(counts.get("total", 0)), 1)
    support = (len(met) / max(len(criteria), 1)) * (done / total)
    strict = bool(STRICT_SKILLS & set(agent_skill_levels(agent)))
    bar = STRICT_BAR if strict else STANDARD_BAR
    choice = "approve" if support >= bar else "reject"
    unmet = [c for c in criteria if c not in met]
    reason = (
        f"{len(met)}/{len(criteria)} success criteria met"
        + (f" (unmet: {', '.join(unmet)})" if unmet else "")
        + f", {done}/{total} subtasks done: support {support:.2f} "
        + ("reaches" if choice == "approve" else "is below")
        + f" my bar {bar:.2f} ({'reviewer' if strict else 'standard'})"
    )
    return {"choice": choice, "reason": reason, "confidence": 1.0}


def voter_prompt(
    agent: Mapping[str, Any], goal: Mapping[str, Any], synthesis: Mapping[str, Any]
) -> str:
    """The prompt one voter receives."""
    criteria = synthesis.get("criteria") or {}
    return load_prompt("voter").render(
        agent_id=agent["agent_id"],
        agent_type=agent.get("agent_type", "agent"),
        skills=", ".join(sorted(agent_skill_levels(agent))) or "none",
        goal=f"{goal['description']} (objective: {goal['objective']})",
        success_criteria="\n".join(f"- {c}: {v.get('status')}" for c, v in criteria.items()),
        synthesis=synthesis.get("text", ""),
    )


async def cast_votes(
    model: BaseChatModel | None,
    voters: Sequence[Mapping[str, Any]],
    goal: Mapping[str, Any],
    synthesis: Mapping[str, Any],
    *,
    window_seconds: float,
    llm_timeout: float,
) -> list[dict[str, Any]]:
    """Collect one ballot per voter, concurrently.

    Returns:
        One dict per voter: ``voter``, ``choice`` (None when late), ``reason``, ``confidence``,
        ``after_seconds`` (arrival, from the opening of the vote), ``late``, ``source``,
        ``fallback``, ``error``, ``usage``.
    """
    start = time.monotonic()

    async def one(agent: Mapping[str, Any]) -> dict[str, Any]:
        base = {"voter": agent["agent_id"], "late": False, "usage": {}}
        if model is None:
            return {
                **base,
                **deterministic_vote(agent, synthesis),
                "after_seconds": 0.0,
                "source": "deterministic",
                "fallback": "simulated",
                "error": None,
            }
        timeout = max(min(llm_timeout, window_seconds - (time.monotonic() - start)), 0.0)
        prompt = [HumanMessage(voter_prompt(agent, goal, synthesis))]
        outcome = await call_structured(model, CollaborationVote, prompt, time_limit=timeout)
        after = round(time.monotonic() - start, 4)
        base |= {"after_seconds": after, "usage": outcome.usage, **outcome.record()}
        if outcome.parsed is not None:
            vote = outcome.parsed
            return {
                **base,
                "choice": vote.choice,
                "reason": vote.reason.strip(),
                "confidence": min(max(float(vote.confidence), 0.0), 1.0),
            }
        if outcome.fallback == "timeout" and after >= window_seconds:
            return {
                **base,
                "choice": None,
                "reason": "no vote before the consensus deadline",
                "confidence": 0.0,
                "late": True,
            }
        return {**base, **deterministic_vote(agent, synthesis)}

    return list(await asyncio.gather(*(one(a) for a in voters)))


def tally(
    proposal: Proposal,
    ballots: Sequence[Mapping[str, Any]],
    voters: Sequence[str],
    *,
    settings: Mapping[str, Any],
    competences: Mapping[str, float],
    opened_at: float,
    window_seconds: float,
) -> Decision:
    """Feed the ballots to a :class:`~stellar_graph.consensus.Ballot` and close it.

    Lateness is judged by each ballot's arrival (``after_seconds``) against the window; the
    round closes at its deadline when some ballot was late, else at the last arrival.
    """
    deadline = opened_at + window_seconds
    box = Ballot.open(
        proposal,
        voters,
        rule=settings.get("rule", "majority"),
        quorum=settings.get("quorum", 0.5),
        supermajority=settings.get("supermajority", 2 / 3),
        deadline=deadline,
        competence=competences,
    )
    last = opened_at
    for b in sorted(ballots, key=lambda b: b["after_seconds"]):
        now = opened_at + float(b["after_seconds"])
        if b.get("late"):
            now = max(now, deadline + 1e-6)
        choice = b.get("choice") or ABSTAIN
        weight = float(b.get("confidence") or 0.0) if settings.get("rule") == "weighted" else 1.0
        box.cast(Vote(b["voter"], choice, str(b.get("reason", "")), weight, cast_at=now), now)
        last = max(last, min(now, deadline))
    late = any(b.get("late") for b in ballots)
    return box.close(deadline if late else last)
