"""The collaboration record: creation, admission, accounting, outcome, loads and the router.

A record lives in the state's ``collaborations`` key (collab id -> record). Nodes write whole
top-level fields of a record (the reducer merges records shallowly), so two nodes never write
the same record in one step; the parallel agent branches report through a private channel.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

from stellar_graph.board import agent_loads
from stellar_graph.collaboration.models import parse_request
from stellar_graph.errors import InvalidInputError

__all__ = [
    "ACTIVE",
    "FINISHED",
    "NextStep",
    "account",
    "collab_loads",
    "finish",
    "new_record",
    "route_collaborations",
    "team_records",
]

ACTIVE = frozenset({"planning", "negotiating", "executing", "voting", "deciding"})
"""Statuses of a collaboration that counts towards ``max_concurrent_collaborations``."""
FINISHED = frozenset({"succeeded", "failed", "no_decision"})
"""Statuses of a collaboration that ran to its end (the success rate's denominator)."""

NextStep = Literal[
    "collaboration",
    "negotiation",
    "collaboration_dispatch",
    "consensus",
    "conflict_resolution",
    "allocator",
]


def new_record(
    raw: object,
    index: int,
    registry: Mapping[str, Any],
    known: Mapping[str, Any],
    seq: int,
    now: datetime,
) -> tuple[str, dict[str, Any]]:
    """Validate one request into a ``queued`` record, or an ``invalid`` one naming the problem."""
    base = {
        "seq": seq,
        "submitted_at": now.isoformat(),
        "conflicts": {},
        "rounds": [],
        "fallbacks": [],
        "usage": {"llm_calls": 0, "input_tokens": 0, "output_tokens": 0, "agent_calls": 0},
    }
    try:
        request = parse_request(raw, index=index, registry=registry)
    except InvalidInputError as exc:
        goal = raw.get("goal") if isinstance(raw, Mapping) else None
        ident = (
            goal.get("id")
            if isinstance(goal, Mapping) and isinstance(goal.get("id"), str)
            else None
        )
        key = ident if ident and ident not in known else f"invalid-{seq}"
        return key, {
            **base,
            "id": key,
            "status": "invalid",
            "error": str(exc),
            "errors": exc.errors,
        }
    cid = request.goal.id
    if cid in known:
        key = f"invalid-{seq}"
        error = (
            f"Invalid start_collaborations[{index}]: `goal.id`={cid!r} is already a collaboration "
            f"({known[cid].get('status')}). Fix: choose a new goal id."
        )
        return key, {
            **base,
            "id": key,
            "status": "invalid",
            "error": error,
            "errors": [{"field": "goal.id", "value": cid, "message": "duplicate collaboration id"}],
        }
    data = request.model_dump(mode="json")
    return cid, {**base, **data, "id": cid, "status": "queued", "message": None}


def account(
    rec: dict[str, Any], step: str, outcome: Mapping[str, Any], usage: Mapping[str, int] | None
) -> None:
    """Count one LLM-backed step on the record (calls, tokens, fallbacks)."""
    totals = dict(rec.get("usage") or {})
    if outcome.get("fallback") != "simulated":
        totals["llm_calls"] = totals.get("llm_calls", 0) + 1
    for key in ("input_tokens", "output_tokens"):
        totals[key] = totals.get(key, 0) + int((usage or {}).get(key, 0))
    rec["usage"] = totals
    if outcome.get("fallback") not in (None, "simulated"):
        rec["fallbacks"] = [
            *(rec.get("fallbacks") or []),
            {"step": step, "fallback": outcome["fallback"], "error": outcome.get("error")},
        ]


def finish(
    rec: Mapping[str, Any], decision: str | None, decided_by: str, reason: str, now: datetime
) -> tuple[dict[str, Any], dict[str, Any], dict[str, float]]:
    """The record's outcome: ``(patch, event, metric counters)``.

    ``approve`` -> ``succeeded``; ``reject`` -> ``failed``; anything else -> ``no_decision``. An
    approval of work with subtasks not done (the integrator's, say) is ``failed``: the team may
    accept the parts, but the goal was not met.
    """
    status = {"approve": "succeeded", "reject": "failed"}.get(decision or "", "no_decision")
    if decided_by == "rule:nothing_to_vote_on":
        status = "failed"
    undone = sorted(sid for sid, st in (rec.get("subtasks") or {}).items() if st.get("status") != "done")
    if status == "succeeded" and undone:
        status = "failed"
        reason = f"{reason}; approved, but subtask(s) {', '.join(undone)} were not done, so the goal is not met"
    outcome = {
        "status": status,
        "decision": decision if decision in ("approve", "reject") else None,
        "decided_by": decided_by,
        "reason": reason,
    }
    patch = {"status": status, "outcome": outcome, "finished_at": now.isoformat()}
    event = {
        "type": "collaboration_finished",
        "collaboration_id": rec["id"],
        "status": status,
        "decision": outcome["decision"],
        "decided_by": decided_by,
        "at": now.isoformat(),
    }
    usage = rec.get("usage") or {}
    metrics = {
        f"collaborations_{status}": 1,
        "collaboration_llm_calls": usage.get("llm_calls", 0),
        "input_tokens": usage.get("input_tokens", 0),
        "output_tokens": usage.get("output_tokens", 0),
        "routing_input_tokens": usage.get("input_tokens", 0),
        "routing_output_tokens": usage.get("output_tokens", 0),
        "collaboration_llm_fallbacks": len(rec.get("fallbacks") or []),
        "collaboration_conflicts": len(rec.get("conflicts") or {}),
    }
    return patch, event, metrics


def collab_loads(
    collabs: Mapping[str, Mapping[str, Any]], *, exclude: str | None = None
) -> dict[str, int]:
    """Subtasks each agent holds (awarded or running) in active collaborations."""
    loads: dict[str, int] = {}
    for cid, rec in collabs.items():
        if cid == exclude or rec.get("status") not in ACTIVE:
            continue
        for st in (rec.get("subtasks") or {}).values():
            if st.get("status") in ("awarded", "running") and st.get("agent_id"):
                loads[st["agent_id"]] = loads.get(st["agent_id"], 0) + 1
    return loads


def team_records(
    state: Mapping[str, Any], rec: Mapping[str, Any], *, include_own: bool = False
) -> dict[str, dict[str, Any]]:
    """The team's registry records with ``load`` = board tasks + other collaborations' subtasks.

    With ``include_own`` the collaboration's own awarded and running subtasks count too.
    """
    agents = state.get("agents") or {}
    board = agent_loads(state.get("tasks") or {})
    others = collab_loads(
        state.get("collaborations") or {}, exclude=None if include_own else rec["id"]
    )
    return {
        a: {**agents[a], "load": board.get(a, 0) + others.get(a, 0)}
        for a in rec["agent_ids"]
        if a in agents
    }


def route_collaborations(state: Mapping[str, Any]) -> NextStep:
    """Where the collaboration path goes next: conflicts first, then the earliest phase.

    Collaborations advance in lockstep by phase; when none is active, queued ones are admitted,
    and when nothing is left the run continues to the allocator (tasks submitted alongside).
    """
    collabs = (state.get("collaborations") or {}).values()
    active = [r for r in collabs if r.get("status") in ACTIVE]
    if any(c.get("status") == "open" for r in active for c in (r.get("conflicts") or {}).values()):
        return "conflict_resolution"
    statuses = {r["status"] for r in active}
    phases: tuple[tuple[str, NextStep], ...] = (
        ("planning", "collaboration"),
        ("negotiating", "negotiation"),
        ("executing", "collaboration_dispatch"),
        ("voting", "consensus"),
    )
    for status, node in phases:
        if status in statuses:
            return node
    if any(r.get("status") == "queued" for r in collabs):
        return "collaboration"
    return "allocator"
