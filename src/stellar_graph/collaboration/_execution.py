"""Executing a collaboration's subtasks: dependency waves, shared resources, reports, synthesis.

Pure functions over the collaboration record (JSON dicts); the graph nodes call them.

Subtask statuses: ``open`` (no agent yet), ``awarded``, ``running``, ``done`` (the agent answered;
criteria it did not meet are listed in ``criteria_unmet``), ``failed`` (its attempts failed and
nobody is left to try), ``unassigned`` (never awarded) and ``blocked`` (a dependency never got done).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from stellar_graph.collaboration._contract import subtask_task
from stellar_graph.collaboration.mediation import contradictions, resource_conflict
from stellar_graph.collaboration.voting import competence
from stellar_graph.negotiation import ContractNet

__all__ = [
    "CRITERIA_NOT_MET",
    "admit",
    "apply_awards",
    "apply_report",
    "close_execution",
    "packets",
    "ready",
    "synthesize",
]

CRITERIA_NOT_MET = "success criteria not met"
"""The agent factory's error prefix for an answer that leaves criteria unmet (an answer, not a crash)."""
_RESULT_CHARS = 4000


def apply_awards(
    subtasks: Mapping[str, Mapping[str, Any]], round_record: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    """Subtask records after a round's awards."""
    out = {sid: dict(st) for sid, st in subtasks.items()}
    for award in round_record["awards"]:
        st = out[award["subtask_id"]]
        if award["agent_id"] is not None:
            st.update(
                status="awarded",
                agent_id=award["agent_id"],
                score=award["score"],
                round=award["round"],
                reason="awarded",
            )
        else:
            st.update(reason=award["reason"])
    return out


def ready(collab: Mapping[str, Any]) -> list[str]:
    """Awarded subtasks whose dependencies are all done, in plan order."""
    subtasks = collab["subtasks"]
    return [
        s["id"]
        for s in collab["plan"]["subtasks"]
        if subtasks[s["id"]]["status"] == "awarded"
        and all(subtasks[d]["status"] == "done" for d in s["depends_on"])
    ]


def admit(
    collab: Mapping[str, Any], candidates: Sequence[str], wave: int
) -> tuple[list[str], dict[str, Any] | None]:
    """Which ready subtasks run now, within the shared resources.

    A ``resource`` conflict without a resolution stops the wave (``([], conflict)``); once
    resolved, its chosen subtask goes first and the others follow in plan order while units last.
    """
    pool = collab["goal"].get("shared_resources") or {}
    steps = {s["id"]: s for s in collab["plan"]["subtasks"]}
    order = list(candidates)
    for resource, units in pool.items():
        claimants = [sid for sid in order if resource in steps[sid]["shared_resources"]]
        if len(claimants) <= units:
            continue
        conflict_id = f"resource:{resource}:w{wave}"
        known = (collab.get("conflicts") or {}).get(conflict_id)
        if known is None:
            agents = {sid: collab["subtasks"][sid]["agent_id"] for sid in claimants}
            return [], resource_conflict(resource, units, wave, claimants, agents)
        if known["status"] == "resolved":
            first = known["resolution"]["decision"]
            order = [first, *[s for s in order if s != first]]
    admitted, used = [], dict.fromkeys(pool, 0.0)
    for sid in order:
        needs = [r for r in steps[sid]["shared_resources"] if r in pool]
        if all(used[r] + 1 <= pool[r] for r in needs):
            admitted.append(sid)
            for r in needs:
                used[r] += 1
    return admitted, None


def packets(
    collab: Mapping[str, Any],
    admitted: Sequence[str],
    team: Mapping[str, Mapping[str, Any]],
    wave: int,
) -> list[dict[str, Any]]:
    """One work packet per admitted subtask: the task, the agent and its dependencies' results."""
    steps = {s["id"]: s for s in collab["plan"]["subtasks"]}
    out = []
    for sid in admitted:
        st = collab["subtasks"][sid]
        attempt = len(st.get("attempts") or []) + 1
        inbox = [
            {
                "sender": collab["subtasks"][d]["agent_id"],
                "content": {"subtask": d, "result": collab["subtasks"][d]["result"]},
            }
            for d in steps[sid]["depends_on"]
        ]
        task = {**subtask_task(collab, steps[sid]), "attempt": attempt}
        out.append(
            {
                "key": f"{collab['id']}/{sid}/{attempt}",
                "collab_id": collab["id"],
                "subtask_id": sid,
                "wave": wave,
                "attempt": attempt,
                "task": task,
                "agent": dict(team[st["agent_id"]]),
                "inbox": inbox,
            }
        )
    return out


def apply_report(
    collab: Mapping[str, Any],
    subtasks: dict[str, dict[str, Any]],
    net: ContractNet,
    packet: Mapping[str, Any],
    report: Mapping[str, Any],
    agent: Mapping[str, Any],
) -> bool:
    """Record one agent report on the subtask and in the negotiation; True when answered.

    An answer that leaves some of the subtask's criteria unmet is still an answer (``inform-done``):
    the team weighs it in the vote. A crash, a garbage reply or a simulated failure is a
    ``failure`` that re-opens the subtask for the next round without this agent.
    """
    sid, agent_id = packet["subtask_id"], agent["agent_id"]
    result = str(report.get("result") or "")
    error = str(report.get("error") or "")
    answered = report.get("status") == "completed" or (
        bool(result.strip()) and error.startswith(CRITERIA_NOT_MET)
    )
    st = subtasks[sid]
    attempt = {
        "agent_id": agent_id,
        "attempt": packet["attempt"],
        "wave": packet["wave"],
        "status": "done" if answered else "failed",
        "error": None if answered else error,
        "simulated": bool(report.get("simulated")),
    }
    st["attempts"] = [*(st.get("attempts") or []), attempt]
    step = next(s for s in collab["plan"]["subtasks"] if s["id"] == sid)
    if answered:
        met = list(report.get("criteria_met") or [])
        met_keys = {c.strip().lower() for c in met}
        st.update(
            status="done",
            result=result[:_RESULT_CHARS],
            criteria_met=met,
            criteria_unmet=[c for c in step["success_criteria"] if c.lower() not in met_keys],
            confidence=report.get("confidence"),
            wave=packet["wave"],
            competence=competence(agent, step["required_skills"]),
            simulated=bool(report.get("simulated")),
        )
    else:
        st.update(status="open", agent_id=None, reason="failed", last_error=error)
    net.report(sid, agent_id, answered, None, now=None)
    return answered


def close_execution(
    collab: Mapping[str, Any], net: ContractNet
) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """Final subtask statuses once nothing more can run, and the contradictions among answers."""
    subtasks = {sid: dict(st) for sid, st in collab["subtasks"].items()}
    steps = {s["id"]: s for s in collab["plan"]["subtasks"]}
    reasons = net.unassigned_reasons()
    for sid in steps:  # plan order: dependencies are settled before their dependents
        st = subtasks[sid]
        if st["status"] == "done":
            continue
        missing = [d for d in steps[sid]["depends_on"] if subtasks[d]["status"] != "done"]
        if missing:
            st.update(
                status="blocked",
                reason=f"dependencies not done: {missing}",
                agent_id=st.get("agent_id"),
            )
        elif st.get("attempts"):
            st.update(status="failed", reason=st.get("last_error") or reasons.get(sid, "failed"))
        else:
            st.update(status="unassigned", reason=reasons.get(sid, st.get("reason", "not awarded")))
    return subtasks, contradictions(subtasks, collab["goal"]["success_criteria"])


def synthesize(collab: Mapping[str, Any]) -> dict[str, Any]:
    """The team's combined result (deterministic, zero tokens) and each criterion's status.

    A criterion is met when a done subtask claims it, unless a contradiction about it was
    resolved as ``unmet``; it is unmet otherwise.
    """
    subtasks = collab["subtasks"]
    conflicts = collab.get("conflicts") or {}
    lines, criteria = [], {}
    for step in collab["plan"]["subtasks"]:
        st = subtasks[step["id"]]
        if st["status"] == "done":
            lines.append(f"[{step['id']}] {step['role']} ({st['agent_id']}): {st['result']}")
        else:
            lines.append(f"[{step['id']}] {step['role']}: {st['status']} ({st.get('reason', '')})")
    for criterion in collab["goal"]["success_criteria"]:
        claimed_by = sorted(
            sid
            for sid, st in subtasks.items()
            if st["status"] == "done"
            and criterion.lower() in {c.lower() for c in st.get("criteria_met") or []}
        )
        entry: dict[str, Any] = {
            "status": "met" if claimed_by else "unmet",
            "claimed_by": claimed_by,
        }
        resolved = conflicts.get(f"contradiction:{criterion}")
        if resolved and resolved.get("resolution"):
            entry.update(
                status=resolved["resolution"]["decision"],
                decided_by=resolved["resolution"]["decided_by"],
            )
        criteria[criterion] = entry
    statuses = [st["status"] for st in subtasks.values()]
    confidences = [
        float(st["confidence"])
        for st in subtasks.values()
        if st["status"] == "done" and st.get("confidence") is not None
    ]
    return {
        "text": "\n".join(lines),
        "criteria": criteria,
        "counts": {"done": statuses.count("done"), "total": len(statuses)},
        "mean_confidence": round(sum(confidences) / len(confidences), 4) if confidences else None,
        "source": "deterministic",
    }
