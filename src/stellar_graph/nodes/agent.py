"""Agent-type nodes: run one slot's queue through the slot worker and write the reports back."""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph

from stellar_graph.agents.worker import WorkerInput
from stellar_graph.board import allocation_id_for
from stellar_graph.config import OrchestraConfig
from stellar_graph.nodes import AgentNode
from stellar_graph.recovery import after_report, returned_patch

__all__ = ["make_agent_node"]


def make_agent_node(name: str, worker: CompiledStateGraph[Any, Any, Any, Any], config: OrchestraConfig) -> AgentNode:
    """Wrap a compiled slot worker as the node that ``Send`` packets go to.

    The wrapper (rather than adding the worker directly) keeps the worker's private keys out of
    the orchestra's state; agent exceptions are already recorded failures inside the worker, so
    one failing agent never cancels its siblings in the same superstep. Failed attempts go
    through :mod:`stellar_graph.recovery` (reassign), and a queue whose agent was taken out goes
    back to the board unstarted.
    """
    strategies = config.emergency_protocols.recovery_strategies
    max_attempts = config.task_allocation.max_attempts

    async def run_agent(state: WorkerInput) -> dict[str, Any]:
        tasks = state.get("tasks") or []
        limit: RunnableConfig = {"recursion_limit": 2 * len(tasks) + 10}  # one worker step per task
        out = await worker.ainvoke(state, limit)
        by_id = {t["id"]: t for t in tasks}
        reports = out.get("reports") or []
        patches = {r["task_id"]: after_report(by_id[r["task_id"]], r, strategies=strategies, max_attempts=max_attempts) for r in reports}
        update = _update(reports, patches)
        agent_id = state["agent"]["agent_id"]
        if out.get("agent_down"):
            _take_out(update, agent_id, out["agent_down"], [t for t in tasks if t["id"] not in patches])
        read = [m["message_id"] for m in state.get("inbox") or []]
        if read:  # the agent saw its mail with its first task: clear it, remember it
            update["mailbox"] = {agent_id: dict.fromkeys(read)}
            update["delivered_messages"] = read
        return update

    run_agent.__name__ = f"run_{name}"
    return run_agent


def _take_out(update: dict[str, Any], agent_id: str, reason: str, unstarted: list[dict[str, Any]]) -> None:
    update["agents"] = {agent_id: {"healthy": False, "health_reason": reason}}
    for task in unstarted:
        update["tasks"][task["id"]] = returned_patch(task, agent_id, reason)
    update["events"].append({"type": "agent_failure", "agent_id": agent_id, "reason": reason,
                             "returned_tasks": [t["id"] for t in unstarted]})
    update["metrics"]["agent_failures"] = 1


def _update(reports: list[dict[str, Any]], patches: dict[str, dict[str, Any]]) -> dict[str, Any]:
    allocations, events = {}, []
    metrics: dict[str, float] = {}
    for report in reports:
        status = patches[report["task_id"]]["status"]  # "pending" when the task is reassigned
        usage = report.get("usage") or {}
        allocations[allocation_id_for(report["task_id"])] = {"status": "reassigning" if status == "pending" else status}
        events.append({"type": "task_completed" if status == "completed" else "task_failed",
                       "task_id": report["task_id"], "agent_id": report.get("agent_id"), "error": report.get("error"),
                       "reassigned": status == "pending"})
        for key, value in (
            ("agent_calls", 1),
            ("tasks_completed", int(status == "completed")),
            ("tasks_failed", int(status == "failed")),
            ("tasks_reassigned", int(status == "pending")),
            ("input_tokens", int(usage.get("input_tokens", 0))),
            ("output_tokens", int(usage.get("output_tokens", 0))),
            ("agent_minutes", float(report.get("duration_minutes") or 0.0)),
            ("agent_wall_seconds", float(report.get("wall_seconds") or 0.0)),
        ):
            metrics[key] = metrics.get(key, 0) + value
    return {"tasks": patches, "allocations": allocations, "events": events, "metrics": metrics}
