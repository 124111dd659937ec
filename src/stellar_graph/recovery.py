"""What happens to a task after its agent failed it (pure; no LangGraph).

Two kinds of failure are told apart:

- an **agent error** (the model call raised: HTTP error, timeout, garbage reply): the agent, not
  the task, is suspect — with ``reassign`` among the recovery strategies the task goes back to
  the board excluding that agent, until ``max_attempts`` is used up;
- a **task failure** (the agent answered but missed the success criteria, or the simulation
  failed): recorded as the outcome.

An agent whose queue sees ``failure_threshold`` agent errors in a row is taken out (unhealthy);
the rest of its queue goes back to the board unstarted, and only those tasks are re-planned:
the repair is local, nobody else's work moves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

__all__ = ["ESCALATION_OPTIONS", "after_report", "apply_decisions", "decision_problem", "end_of_ladder", "returned_patch"]

ESCALATION_OPTIONS = ("retry", "reassign", "fail", "resolve")
"""What a human may decide for an escalated task (``{"action": ..., ...}``)."""


def after_report(
    task: Mapping[str, Any],
    report: Mapping[str, Any],
    *,
    strategies: Sequence[str],
    max_attempts: int,
    timeout_minutes: float | None = None,
) -> dict[str, Any]:
    """The task patch for a finished attempt: the outcome, or back to ``pending`` to reassign.

    With ``timeout_minutes`` (``emergency_protocols.failure_recovery_timeout_minutes``), a task
    whose recovery began longer ago than that (its first reassignment) is not reassigned again:
    it takes the end of the ladder (escalate, a degraded result, or the failure)."""
    patch: dict[str, Any] = {
        "status": report["status"],
        "result": report.get("result"),
        "error": report.get("error"),
        "report": dict(report),
        "started_at": report.get("started_at"),
        "finished_at": report.get("finished_at"),
        "wall_seconds": report.get("wall_seconds"),
    }
    attempt = int(task.get("attempt", 1))
    if report["status"] == "completed":
        return patch
    if not report.get("agent_error"):
        return _escalate_or_fail(patch, strategies)
    overdue = _recovery_overdue(task, report, timeout_minutes)
    if overdue:
        patch.update(end_of_ladder(task["id"], f"{overdue}; last error: {report.get('error')}", strategies))
        return patch
    if "reassign" in strategies and attempt < max_attempts:
        step = {"step": "reassign", "attempt": attempt, "from": report.get("agent_id"), "error": report.get("error"),
                "at": report.get("finished_at")}
        patch.update(
            status="pending",
            agent_id=None,
            slot=None,
            queue_position=None,
            excluded_agents=[*(task.get("excluded_agents") or []), report.get("agent_id")],
            recovery=[*(task.get("recovery") or []), step],
        )
        return patch
    # Attempts used up after agent errors: the same end as when no other agent is left.
    patch.update(end_of_ladder(task["id"], str(report.get("error")), strategies))
    return patch


def _recovery_overdue(task: Mapping[str, Any], report: Mapping[str, Any], timeout_minutes: float | None) -> str:
    """Why the recovery ran out of time (empty if it did not): from the first recovery step to this report."""
    steps = task.get("recovery") or []
    if timeout_minutes is None or not steps or not steps[0].get("at") or not report.get("finished_at"):
        return ""
    try:
        began = datetime.fromisoformat(str(steps[0]["at"]))
        now = datetime.fromisoformat(str(report["finished_at"]))
    except ValueError:
        return ""
    minutes = (now - began).total_seconds() / 60
    if minutes <= timeout_minutes:
        return ""
    return f"recovery did not finish within failure_recovery_timeout_minutes={timeout_minutes:g} (took {minutes:.1f})"


def end_of_ladder(task_id: str, error: str, strategies: Sequence[str]) -> dict[str, Any]:
    """Where agent errors end when no agent is left to try: a human decides (``escalate``), a
    degraded result that says so (``fallback`` without a fallback agent), or the failure."""
    if "escalate" in strategies:
        return {"status": "escalating", "error": error}
    if "fallback" in strategies:
        return {"status": "degraded", "error": error,
                "result": f"DEGRADED: no agent could complete task {task_id!r}; {error}"}
    return {"status": "failed", "error": error}


def _escalate_or_fail(patch: dict[str, Any], strategies: Sequence[str]) -> dict[str, Any]:
    """A task failure (criteria missed): a human decides (``escalate``), or the failure stands."""
    if "escalate" in strategies:
        patch["status"] = "escalating"
    return patch


def apply_decisions(
    escalated: Mapping[str, Mapping[str, Any]], decisions: object, *, agents: Mapping[str, Any]
) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """Apply a human's answers to escalated tasks.

    Args:
        escalated: task id -> task record (status ``escalating``).
        decisions: task id -> ``"retry"`` or ``{"action": "retry" | "reassign" | "fail" | "resolve",
            "agent_id": ... (reassign), "result": ... (resolve), "reason": ...}``.
        agents: the registry (a reassignment must name a registered agent).

    Returns:
        (task patches, events). A task without a valid decision stays escalated and an
        ``escalation_invalid`` event says why.
    """
    patches: dict[str, dict[str, Any]] = {}
    events: list[dict[str, Any]] = []
    answers = decisions if isinstance(decisions, Mapping) else {}
    for tid, task in escalated.items():
        raw = answers.get(tid)
        decision = {"action": raw} if isinstance(raw, str) else dict(raw) if isinstance(raw, Mapping) else {}
        problem = decision_problem(decision, agents)
        if problem:
            events.append({"type": "escalation_invalid", "task_id": tid, "decision": raw, "problem": problem})
            continue
        step = {"step": "escalate", "decision": decision, "by": "human"}
        patches[tid] = _decided(task, decision, step)
        events.append({"type": "escalation_resolved", "task_id": tid, "decision": decision})
    return patches, events


def decision_problem(decision: Mapping[str, Any], agents: Mapping[str, Any]) -> str | None:
    """What is wrong with one escalation decision (``None`` if nothing): an unknown action, a
    reassignment to an agent that is not registered, a resolution without a result."""
    action = decision.get("action")
    if action not in ESCALATION_OPTIONS:
        return f"action {action!r} is not one of {list(ESCALATION_OPTIONS)}"
    if action == "reassign" and decision.get("agent_id") not in agents:
        return f"reassign needs a registered `agent_id`, got {decision.get('agent_id')!r}"
    if action == "resolve" and not str(decision.get("result") or "").strip():
        return "resolve needs a non-empty `result`"
    return None


def _decided(task: Mapping[str, Any], decision: Mapping[str, Any], step: dict[str, Any]) -> dict[str, Any]:
    recovery = [*(task.get("recovery") or []), step]
    action = decision["action"]
    if action == "fail":
        return {"status": "failed", "error": f"failed by human decision: {decision.get('reason') or 'no reason given'}", "recovery": recovery}
    if action == "resolve":
        report = {"status": "completed", "result": decision["result"], "resolved_by": "human", "task_id": task["id"]}
        return {"status": "completed", "result": decision["result"], "error": None, "report": report, "recovery": recovery}
    patch: dict[str, Any] = {"status": "pending", "attempt": 0, "excluded_agents": [], "agent_id": None, "recovery": recovery}
    if action == "reassign":
        patch["assigned_agent"] = decision["agent_id"]
    return patch


def returned_patch(task: Mapping[str, Any], agent_id: str, reason: str) -> dict[str, Any]:
    """A queued task whose agent was taken out before reaching it: back to the board, unstarted."""
    step = {"step": "repair", "from": agent_id, "reason": reason}
    return {
        "status": "pending",
        # Never started: the placement does not use up one of the task's attempts.
        "attempt": max(int(task.get("attempt", 1)) - 1, 0),
        "agent_id": None,
        "slot": None,
        "queue_position": None,
        "recovery": [*(task.get("recovery") or []), step],
    }
