"""One Contract Net round of a collaboration, over :class:`stellar_graph.negotiation.ContractNet`.

A round is opened (``cfp`` per subtask still without an agent), every invited agent answers with
its deterministic allocator score (``propose``) or the scorer's reason it cannot take the subtask
(``refuse``), ties for the best score become ``claim`` conflicts, and the round is closed
(``accept-proposal`` / ``reject-proposal``). Answers are timed from the opening of the round on
the real clock: with bid notes, a note that takes longer than the bid window makes the bid late,
and the core ignores and counts it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage

from stellar_graph.collaboration._llm import call_text
from stellar_graph.collaboration.mediation import claim_conflict
from stellar_graph.models import DEFAULT_CAPACITY
from stellar_graph.negotiation import Bid, CallForProposals, ContractNet
from stellar_graph.prompts import load_prompt
from stellar_graph.scoring import AgentPool, score_task

__all__ = ["close_pending_round", "new_net", "open_round_with_bids", "subtask_task"]

TIE_EPS = 1e-9
"""Bids closer than this for one subtask are a claim conflict."""
TIE_NUDGE = 1e-9
"""Added to the winning claimant's bid so the core awards the resolution's choice."""


def new_net(
    plan: Mapping[str, Any],
    agent_ids: Sequence[str],
    *,
    rounds_limit: int,
    bid_window: float,
    capacity: Mapping[str, int],
    manager: str,
) -> ContractNet:
    """A negotiation over the plan's subtasks among the team."""
    subtasks = [
        {"id": s["id"], "description": s["description"], "required_skills": s["required_skills"]}
        for s in plan["subtasks"]
    ]
    return ContractNet(
        subtasks,
        list(agent_ids),
        rounds_limit=rounds_limit,
        bid_window=bid_window,
        capacity=dict(capacity),
        manager_id=manager,
    )


def subtask_task(collab: Mapping[str, Any], subtask: Mapping[str, Any]) -> dict[str, Any]:
    """The subtask as a task dict (for scoring and for the agent subgraph)."""
    goal = collab["goal"]
    return {
        "id": f"{collab['id']}.{subtask['id']}",
        "description": f"{subtask['description']} (your role: {subtask['role']}; team goal: {goal['description']})",
        "priority": goal.get("priority", "medium"),
        "deadline": goal.get("deadline"),
        "required_skills": list(subtask["required_skills"]),
        "estimated_duration_minutes": float(subtask.get("estimated_minutes", 60.0)),
        "resources": {},
        "dependencies": [],
        "success_criteria": list(subtask.get("success_criteria") or []),
        "token_budget": None,
    }


async def open_round_with_bids(
    net: ContractNet,
    collab: Mapping[str, Any],
    team: Mapping[str, Mapping[str, Any]],
    *,
    weights: Mapping[str, float],
    now: datetime,
    model: BaseChatModel | None,
    note_timeout: float,
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """Open the next round and gather every answer.

    Args:
        net: the negotiation (mutated: the round is opened).
        collab: the collaboration record.
        team: agent id -> record with ``load``.
        weights: the allocator's weights.
        now: the orchestra clock.
        model: writes bid notes when the collaboration asked for them.
        note_timeout: ``llm.timeout_seconds``.

    Returns:
        ``(pending round, claim conflicts)``; the round is None when nothing could be offered.
    """
    opened = now.timestamp()
    cfps = net.open_round(opened)
    if not cfps:
        return None, []
    subtasks = {s["id"]: s for s in collab["plan"]["subtasks"]}
    start = time.monotonic()
    answers: list[dict[str, Any]] = []
    for cfp in cfps:
        task = subtask_task(collab, subtasks[cfp.subtask_id])
        known = [dict(team[a]) for a in cfp.invited if a in team]
        answers += _answers(cfp, task, known, weights, now) if known else []
        answers += [  # a member that left the registry cannot work: it refuses
            {"cfp_id": cfp.cfp_id, "subtask_id": cfp.subtask_id, "agent_id": a, "after_seconds": 0.0,
             "kind": "refuse", "score": 0.0, "reason": "not registered any more"}
            for a in cfp.invited if a not in team
        ]  # fmt: skip
    if model is not None and collab.get("bid_notes"):
        await _write_notes(
            model, answers, collab, team, subtasks,
            start=start, window=net.bid_window, time_limit=note_timeout,
        )  # fmt: skip
    deadline = opened + net.bid_window
    pending = {"round": net.round, "opened_at": opened, "deadline": deadline, "answers": answers}
    return pending, _ties(pending, team)


def _answers(
    cfp: CallForProposals,
    task: Mapping[str, Any],
    invited: list[dict[str, Any]],
    weights: Mapping[str, float],
    now: datetime,
) -> list[dict[str, Any]]:
    """Each invited agent's answer: its allocator score, or the scorer's reason it cannot."""
    scores = score_task(task, AgentPool.from_records(invited), weights=weights, now=now)
    reasons = scores.reasons()
    out = []
    for i, agent in enumerate(scores.agent_ids):
        base = {
            "cfp_id": cfp.cfp_id,
            "subtask_id": cfp.subtask_id,
            "agent_id": agent,
            "after_seconds": 0.0,
        }
        if scores.feasible[i]:
            top = sorted(scores.breakdown(i).items(), key=lambda kv: -weights[kv[0]] * kv[1])[:3]
            note = ", ".join(f"{f} {v:.2f}" for f, v in top)
            out.append({**base, "kind": "propose", "score": float(scores.total[i]), "note": note})
        else:
            reason = reasons.get(agent, "infeasible")
            out.append({**base, "kind": "refuse", "score": 0.0, "reason": reason})
    return out


async def _write_notes(
    model: BaseChatModel,
    answers: list[dict[str, Any]],
    collab: Mapping[str, Any],
    team: Mapping[str, Mapping[str, Any]],
    subtasks: Mapping[str, Mapping[str, Any]],
    *,
    start: float,
    window: float,
    time_limit: float,
) -> None:
    async def note(answer: dict[str, Any]) -> None:
        agent, sub = team[answer["agent_id"]], subtasks[answer["subtask_id"]]
        prompt = load_prompt("bid_note").render(
            agent_id=agent["agent_id"],
            agent_type=agent.get("agent_type", "agent"),
            subtask=sub["description"],
            goal=collab["goal"]["description"],
            score=f"{answer['score']:.3f}",
        )
        left = max(min(time_limit, window - (time.monotonic() - start)), 0.0)
        outcome = await call_text(model, [HumanMessage(prompt)], time_limit=left)
        answer["after_seconds"] = round(time.monotonic() - start, 4)
        answer["usage"] = outcome.usage
        if outcome.fallback is None and outcome.text:
            answer["note"] = outcome.text[:500]
            answer["note_source"] = "llm"
        else:
            answer["note_source"] = "deterministic"
            answer["note_fallback"] = outcome.fallback or "invalid_content"

    await asyncio.gather(*(note(a) for a in answers if a["kind"] == "propose"))


def _ties(
    pending: Mapping[str, Any], team: Mapping[str, Mapping[str, Any]]
) -> list[dict[str, Any]]:
    conflicts = []
    by_subtask: dict[str, list[Mapping[str, Any]]] = {}
    for a in pending["answers"]:
        if (
            a["kind"] == "propose"
            and a["after_seconds"] <= pending["deadline"] - pending["opened_at"]
        ):
            by_subtask.setdefault(a["subtask_id"], []).append(a)
    for sid, props in by_subtask.items():
        best = max(p["score"] for p in props)
        tied = [p["agent_id"] for p in props if p["score"] >= best - TIE_EPS]
        if len(tied) > 1:
            claimants = {
                a: {
                    "load": int(team[a].get("load", 0)),
                    "capacity": int(team[a].get("capacity", DEFAULT_CAPACITY)),
                }
                for a in tied
            }
            conflicts.append(claim_conflict(sid, pending["round"], best, claimants))
    return conflicts


def close_pending_round(
    net: ContractNet, pending: Mapping[str, Any], winners: Mapping[str, str]
) -> dict[str, Any]:
    """Deliver the answers to the core at their arrival times and close the round.

    Args:
        net: the negotiation with the round open.
        pending: from :func:`open_round_with_bids`.
        winners: subtask id -> the claimant a claim conflict's resolution chose.

    Returns:
        The round's record: ``round``, ``opened_at``, ``deadline``, ``bids`` (each with the
        core's ``status``: accepted, late...), ``awards`` and ``late``.
    """
    opened, deadline = pending["opened_at"], pending["deadline"]
    bids = []
    for a in sorted(
        pending["answers"], key=lambda a: (a["after_seconds"], a["cfp_id"], a["agent_id"])
    ):
        score = a["score"] + (TIE_NUDGE if winners.get(a["subtask_id"]) == a["agent_id"] else 0.0)
        arrived = opened + float(a["after_seconds"])
        bid = Bid(
            a["agent_id"],
            a["cfp_id"],
            a["kind"],
            score=score,
            note=a.get("note", ""),
            reason=a.get("reason", ""),
            sent_at=arrived,
        )
        status = net.receive(bid, arrived)
        bids.append(
            {
                **{k: v for k, v in a.items() if k != "cfp_id"},
                "status": status,
                **({"tie_break": "won"} if winners.get(a["subtask_id"]) == a["agent_id"] else {}),
            }
        )
    late = sum(b["status"] == "late" for b in bids)
    closed_at = (
        deadline if late or not net.all_answered else max(opened + b["after_seconds"] for b in bids)
    )
    awards = [aw.to_dict() for aw in net.close_round(closed_at)]
    return {
        "round": pending["round"],
        "opened_at": opened,
        "deadline": deadline,
        "closed_at": closed_at,
        "bids": bids,
        "awards": awards,
        "late": late,
    }
