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
from typing import Any

__all__ = ["after_report", "returned_patch"]


def after_report(
    task: Mapping[str, Any],
    report: Mapping[str, Any],
    *,
    strategies: Sequence[str],
    max_attempts: int,
) -> dict[str, Any]:
    """The task patch for a finished attempt: the outcome, or back to ``pending`` to reassign."""
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
    if report["status"] == "completed" or not report.get("agent_error"):
        return patch
    if "reassign" in strategies and attempt < max_attempts:
        step = {"step": "reassign", "attempt": attempt, "from": report.get("agent_id"), "error": report.get("error")}
        patch.update(
            status="pending",
            agent_id=None,
            slot=None,
            queue_position=None,
            excluded_agents=[*(task.get("excluded_agents") or []), report.get("agent_id")],
            recovery=[*(task.get("recovery") or []), step],
        )
    return patch


def returned_patch(task: Mapping[str, Any], agent_id: str, reason: str) -> dict[str, Any]:
    """A queued task whose agent was taken out before reaching it: back to the board, unstarted."""
    step = {"step": "repair", "from": agent_id, "reason": reason}
    return {
        "status": "pending",
        "agent_id": None,
        "slot": None,
        "queue_position": None,
        "recovery": [*(task.get("recovery") or []), step],
    }
