"""Conflicts within a collaboration, and how each is resolved.

Four kinds of conflict are detected, each carrying in ``details`` everything its rule needs:

* ``split_vote``: the vote decided nothing (tie, dissent, no quorum, timeout). Options:
  ``approve``, ``reject``, ``no_decision``.
* ``contradiction``: one subtask's answer claims a success criterion that another subtask,
  also responsible for it, answered without claiming. Options: ``met``, ``unmet``.
* ``claim``: two agents bid the same best score for one subtask. Options: the claimants.
* ``resource``: ready subtasks need more units of a shared resource than the goal has. Options:
  the claimant subtasks (which one goes first).

An LLM mediator (structured :class:`~.models.MediatorRuling`, prompt ``prompts/mediator.md``)
proposes a resolution within ``conflict_resolution_timeout_minutes``; a decision outside the
options, a failed call or no model means the deterministic rule of the kind decides. Every
resolution records ``decided_by`` (``mediator:llm`` or ``rule:<name>``) and its rationale.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage

from stellar_graph.collaboration._llm import call_structured
from stellar_graph.collaboration.models import MediatorRuling
from stellar_graph.consensus import Proposal, Vote, vote
from stellar_graph.prompts import load_prompt

__all__ = [
    "CONFLICT_KINDS",
    "claim_conflict",
    "contradictions",
    "deterministic_ruling",
    "mediator_prompt",
    "resolve_conflict",
    "resource_conflict",
    "split_vote_conflict",
]

CONFLICT_KINDS = ("split_vote", "contradiction", "claim", "resource")


def _conflict(
    cid: str,
    kind: str,
    summary: str,
    parties: list[str],
    options: list[str],
    details: dict[str, Any],
) -> dict[str, Any]:
    return {
        "id": cid,
        "kind": kind,
        "summary": summary,
        "parties": parties,
        "options": options,
        "details": details,
        "status": "open",
        "resolution": None,
    }


def split_vote_conflict(
    decision: Mapping[str, Any],
    competences: Mapping[str, float],
    voters: Sequence[str],
    quorum: float,
) -> dict[str, Any]:
    """A vote without a decision (``decision`` is ``Decision.to_dict()``)."""
    votes = [v for v in decision["votes"] if v["choice"] != "abstain"]
    return _conflict(
        "split_vote",
        "split_vote",
        f"The vote decided nothing ({decision['reason']}; tally {decision['tally']}, "
        f"participation {decision['participation']:.2f}).",
        [v["voter"] for v in votes],
        ["approve", "reject", "no_decision"],
        {
            "votes": list(decision["votes"]),
            "voters": list(voters),
            "competence": dict(competences),
            "quorum": quorum,
            "participation": decision["participation"],
            "reason": decision["reason"],
        },
    )


def contradictions(
    subtasks: Mapping[str, Mapping[str, Any]], criteria: Sequence[str]
) -> list[dict[str, Any]]:
    """Contradicting answers on a success criterion, one conflict per criterion.

    A subtask *claims* a criterion when its answer lists it as met; it *denies* it when the
    criterion was assigned to it and its answer does not list it. Only answered subtasks count.
    """
    out = []
    for criterion in criteria:
        key = criterion.lower()
        claims: dict[str, dict[str, Any]] = {}
        for sid, st in subtasks.items():
            if st.get("status") != "done":
                continue
            claimed = key in {c.lower() for c in st.get("criteria_met") or []}
            assigned = key in {c.lower() for c in st.get("success_criteria") or []}
            if claimed or assigned:
                claims[sid] = {
                    "agent_id": st.get("agent_id"),
                    "claims": claimed,
                    "confidence": float(st.get("confidence") or 0.0),
                    "competence": float(st.get("competence") or 0.5),
                }
        if any(c["claims"] for c in claims.values()) and not all(
            c["claims"] for c in claims.values()
        ):
            yes = sorted(s for s, c in claims.items() if c["claims"])
            no = sorted(s for s, c in claims.items() if not c["claims"])
            out.append(
                _conflict(
                    f"contradiction:{criterion}",
                    "contradiction",
                    f"Subtask(s) {yes} claim {criterion!r} is met; {no} answered without meeting it.",
                    sorted(claims),
                    ["met", "unmet"],
                    {"criterion": criterion, "claims": claims},
                )
            )
    return out


def claim_conflict(
    subtask_id: str, round_: int, score: float, claimants: Mapping[str, Mapping[str, Any]]
) -> dict[str, Any]:
    """Several agents bid the same best score for one subtask (``claimants``: id -> load, capacity)."""
    names = sorted(claimants)
    return _conflict(
        f"claim:{subtask_id}:r{round_}",
        "claim",
        f"Agents {names} claim subtask {subtask_id!r} with the same score {score:.4f}.",
        names,
        names,
        {
            "subtask": subtask_id,
            "round": round_,
            "score": score,
            "claimants": {k: dict(v) for k, v in claimants.items()},
        },
    )


def resource_conflict(
    resource: str, units: float, wave: int, claimants: Sequence[str], agents: Mapping[str, str]
) -> dict[str, Any]:
    """Ready subtasks (``claimants``, in plan order) need more of ``resource`` than ``units``."""
    return _conflict(
        f"resource:{resource}:w{wave}",
        "resource",
        f"Subtasks {list(claimants)} all need shared resource {resource!r}; only {units:g} unit(s).",
        [agents[s] for s in claimants],
        list(claimants),
        {
            "resource": resource,
            "units": units,
            "wave": wave,
            "claimants": list(claimants),
            "agents": dict(agents),
        },
    )


def deterministic_ruling(conflict: Mapping[str, Any]) -> tuple[str, str, str]:
    """The rule of each kind: ``(decision, rule name, rationale)``."""
    kind, d = conflict["kind"], conflict["details"]
    if kind == "split_vote":
        return _split_vote_rule(d)
    if kind == "contradiction":

        def strength(c: Mapping[str, Any]) -> float:
            return float(c["confidence"]) * float(c["competence"])

        yes = max((strength(c) for c in d["claims"].values() if c["claims"]), default=0.0)
        no = max((strength(c) for c in d["claims"].values() if not c["claims"]), default=0.0)
        decision = "met" if yes > no else "unmet"
        return (
            decision,
            "confidence_x_competence",
            (
                f"strongest claim {yes:.3f} vs strongest denial {no:.3f} (confidence x competence); "
                f"a tie keeps the cautious answer"
            ),
        )
    if kind == "claim":
        c = d["claimants"]
        winner = min(c, key=lambda a: (c[a]["load"] / max(c[a]["capacity"], 1), a))
        return (
            winner,
            "load_then_id",
            "equal bids: the agent with the lower load ratio, then the smaller id",
        )
    first = d["claimants"][0]
    return (
        first,
        "plan_order",
        "the subtask that comes first in the plan goes first; the others wait",
    )


def _split_vote_rule(d: Mapping[str, Any]) -> tuple[str, str, str]:
    if d["participation"] < d["quorum"]:
        return (
            "no_decision",
            "no_decision_without_quorum",
            (
                f"participation {d['participation']:.2f} is below the quorum {d['quorum']:.2f}: "
                f"nobody may decide for the absent voters"
            ),
        )
    votes = [Vote.from_dict(v) for v in d["votes"]]
    decision = vote(
        Proposal("split", "re-tally", ("approve", "reject")),
        votes,
        d["voters"],
        rule="weighted",
        quorum=0.0,
        competence=d["competence"],
    )
    tally = {k: round(v, 3) for k, v in decision.tally.items()}
    if decision.outcome is None:
        return (
            "no_decision",
            "competence_weighted",
            f"the competence-weighted tally {tally} is tied too",
        )
    return (
        decision.outcome,
        "competence_weighted",
        f"re-tallied with competence (log-odds) weights: {tally}",
    )


def mediator_prompt(conflict: Mapping[str, Any], goal: Mapping[str, Any]) -> str:
    """The prompt the mediator receives for one conflict."""
    return load_prompt("mediator").render(
        goal=f"{goal['description']} (objective: {goal['objective']})",
        success_criteria="\n".join(f"- {c}" for c in goal["success_criteria"]),
        kind=conflict["kind"],
        summary=conflict["summary"],
        details=json.dumps(conflict["details"], indent=1, sort_keys=True, default=str),
        options=", ".join(conflict["options"]),
    )


async def resolve_conflict(
    model: BaseChatModel | None,
    conflict: Mapping[str, Any],
    goal: Mapping[str, Any],
    *,
    time_limit: float,
) -> dict[str, Any]:
    """Resolve one conflict: the mediator when it answers usefully, else the rule.

    Returns:
        The resolution: ``decision``, ``rationale``, ``decided_by``, ``source``, ``fallback``,
        ``error``, ``usage``.
    """
    if model is not None:
        prompt = [HumanMessage(mediator_prompt(conflict, goal))]
        outcome = await call_structured(model, MediatorRuling, prompt, time_limit=time_limit)
        ruling = outcome.parsed
        if ruling is not None:
            chosen = {o.lower(): o for o in conflict["options"]}.get(
                ruling.decision.strip().lower()
            )
            if chosen is not None:
                return {
                    "decision": chosen,
                    "rationale": ruling.rationale.strip(),
                    "decided_by": "mediator:llm",
                    "usage": outcome.usage,
                    **outcome.record(),
                }
            outcome = outcome.failed(
                "invalid_content",
                f"decision {ruling.decision!r} is not one of {conflict['options']}",
            )
        record, usage = outcome.record(), outcome.usage
    else:
        record, usage = {"source": "deterministic", "fallback": "simulated", "error": None}, {}
    decision, rule, why = deterministic_ruling(conflict)
    return {
        "decision": decision,
        "rationale": why,
        "decided_by": f"rule:{rule}",
        "usage": usage,
        **record,
    }
