"""``monitor``: apply the outcomes of finished task runs — once each — and climb the ladder.

A task run's outcome arrives as a control event (``task_outcomes``). It is applied only while
its task is ``running`` that same attempt on that same thread, so a redelivered outcome (after a
restart) changes nothing. Failed attempts go through :mod:`stellar_graph.recovery` (reassign,
fallback, escalate); an agent whose runs end in ``agent_failure_threshold`` agent errors in a
row is taken out and only its unstarted tasks go back to the board.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.config import get_stream_writer
from langgraph.runtime import Runtime

from stellar_graph.board import FINISHED, allocation_id_for
from stellar_graph.config import OrchestraConfig
from stellar_graph.ops.health import health_update
from stellar_graph.recovery import after_report
from stellar_graph.runtime.outbox import acollect
from stellar_graph.state import OrchestraState

__all__ = ["make_monitor"]


def make_monitor(config: OrchestraConfig, clock: Callable[[], datetime], *, outbox: bool = False) -> Callable[..., Any]:
    """Build the monitor node; with ``outbox``, it also applies the outcomes task runs posted to
    the Store (:mod:`stellar_graph.runtime.outbox`: task runs on the LangGraph API server)."""
    strategies = config.emergency_protocols.recovery_strategies
    max_attempts = config.task_allocation.max_attempts
    threshold = config.task_allocation.agent_failure_threshold
    timeout = config.task_allocation.failure_recovery_timeout_minutes

    async def monitor(state: OrchestraState, config: RunnableConfig, runtime: Runtime[Any]) -> dict[str, Any]:
        tasks, agents = state.get("tasks") or {}, state.get("agents") or {}
        update: dict[str, Any] = {"task_outcomes": [], "tasks": {}, "allocations": {}, "events": [],
                                  "agents": {}, "metrics": {"control_runs": 1}}
        streaks = {a: int(r.get("errors_in_row", 0)) for a, r in agents.items()}
        outcomes = list(state.get("task_outcomes") or [])
        if outbox and runtime.store is not None:
            thread = str((config.get("configurable") or {}).get("thread_id", ""))
            outcomes += [dict(o) for o in await acollect(runtime.store, thread, tasks)]
        for outcome in outcomes:
            task = tasks.get(outcome["task_id"])
            if task is None or not _current(task, outcome):
                _count(update, "duplicate_outcomes", 1)
                continue
            report = outcome["report"]
            patch = after_report(task, report, strategies=strategies, max_attempts=max_attempts, timeout_minutes=timeout)
            patch["run"] = None
            update["tasks"][task["id"]] = patch
            _record(update, report, patch["status"], outcome["attempt"])
            agent_id = report.get("agent_id") or task.get("agent_id")
            if agent_id in streaks:
                streaks[agent_id] = streaks[agent_id] + 1 if report.get("agent_error") else 0
        for agent_id, streak in streaks.items():
            if streak != int(agents[agent_id].get("errors_in_row", 0)):
                update["agents"][agent_id] = {"errors_in_row": streak}
            if streak >= threshold and agents[agent_id].get("healthy", True):
                _take_out(update, agents, {**tasks, **update["tasks"]}, agent_id, streak)
        board = {**tasks, **{t: {**tasks[t], **p} for t, p in update["tasks"].items()}}
        get_stream_writer()({
            "type": "progress", "finished": sum(1 for t in board.values() if t.get("status") in FINISHED),
            "total": len(board), "at": clock().isoformat(),
        })
        return update

    return monitor


def _current(task: Mapping[str, Any], outcome: Mapping[str, Any]) -> bool:
    """Whether the outcome is of the task's run in flight (not a repeat, not a stale attempt)."""
    run = task.get("run") or {}
    return task.get("status") == "running" and run.get("thread_id") == outcome.get("thread_id")


def _record(update: dict[str, Any], report: Mapping[str, Any], status: str, attempt: int) -> None:
    """The allocation's status, the event and the counters of one applied outcome."""
    task_id, usage = report["task_id"], report.get("usage") or {}
    update["allocations"][allocation_id_for(task_id)] = {"status": "reassigning" if status == "pending" else status}
    kind = {"completed": "task_completed", "pending": "task_reassigned"}.get(status, "task_failed")
    update["events"].append({"type": kind, "task_id": task_id, "attempt": attempt, "agent_id": report.get("agent_id"),
                             "error": report.get("error")})
    for key, value in (
        ("agent_calls", 1),
        ("tasks_completed", int(status == "completed")),
        ("tasks_failed", int(status == "failed")),
        ("tasks_reassigned", int(status == "pending")),
        ("input_tokens", int(usage.get("input_tokens", 0))),
        ("output_tokens", int(usage.get("output_tokens", 0))),
        ("repair_calls", int(usage.get("repair_calls", 0))),
        ("agent_minutes", float(report.get("duration_minutes") or 0.0)),
        ("agent_wall_seconds", float(report.get("wall_seconds") or 0.0)),
    ):
        _count(update, key, value)


def _count(update: dict[str, Any], key: str, value: float) -> None:
    update["metrics"][key] = update["metrics"].get(key, 0) + value


def _take_out(update: dict[str, Any], agents: Mapping[str, Any], board: Mapping[str, Any], agent_id: str, streak: int) -> None:
    """Take an agent out after ``streak`` agent errors in a row; its unstarted tasks go back."""
    last = next((e["error"] for e in reversed(update["events"]) if e.get("agent_id") == agent_id), None)
    reason = f"{streak} agent errors in a row; last: {last}"
    taken = health_update(agents, board, [{"agent_id": agent_id, "healthy": False, "reason": reason}])
    update["agents"][agent_id] = {**update["agents"].get(agent_id, {}), **taken["agents"][agent_id], "errors_in_row": 0}
    update["tasks"].update(taken["tasks"])
    update["events"].extend({**e, "source": "monitor"} for e in taken["events"])
    _count(update, "agent_failures", 1)
