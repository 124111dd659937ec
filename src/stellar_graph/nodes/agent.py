"""Agent-type nodes: run one slot's queue through the slot worker and write the reports back."""

from __future__ import annotations

from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph

from stellar_graph.agents.worker import WorkerInput
from stellar_graph.board import allocation_id_for
from stellar_graph.nodes import AgentNode

__all__ = ["make_agent_node"]


def make_agent_node(name: str, worker: CompiledStateGraph[Any, Any, Any, Any]) -> AgentNode:
    """Wrap a compiled slot worker as the node that ``Send`` packets go to.

    The wrapper (rather than adding the worker directly) keeps the worker's private keys out of
    the orchestra's state; agent exceptions are already recorded failures inside the worker, so
    one failing agent never cancels its siblings in the same superstep.
    """

    async def run_agent(state: WorkerInput) -> dict[str, Any]:
        tasks = state.get("tasks") or []
        limit: RunnableConfig = {"recursion_limit": 2 * len(tasks) + 10}  # one worker step per task
        out = await worker.ainvoke(state, limit)
        update = _reports_update(out.get("reports") or [])
        read = [m["message_id"] for m in state.get("inbox") or []]
        if read:  # the agent saw its mail with its first task: clear it, remember it
            update["mailbox"] = {state["agent"]["agent_id"]: dict.fromkeys(read)}
            update["delivered_messages"] = read
        return update

    run_agent.__name__ = f"run_{name}"
    return run_agent


def _reports_update(reports: list[dict[str, Any]]) -> dict[str, Any]:
    tasks, allocations, events = {}, {}, []
    metrics: dict[str, float] = {}
    for report in reports:
        status = report["status"]
        usage = report.get("usage") or {}
        tasks[report["task_id"]] = {
            "status": status,
            "result": report.get("result"),
            "error": report.get("error"),
            "report": report,
            "started_at": report.get("started_at"),
            "finished_at": report.get("finished_at"),
            "wall_seconds": report.get("wall_seconds"),
        }
        allocations[allocation_id_for(report["task_id"])] = {"status": status}
        events.append({"type": "task_completed" if status == "completed" else "task_failed",
                       "task_id": report["task_id"], "agent_id": report.get("agent_id"), "error": report.get("error")})
        for key, value in (
            ("agent_calls", 1),
            ("tasks_completed", int(status == "completed")),
            ("tasks_failed", int(status != "completed")),
            ("input_tokens", int(usage.get("input_tokens", 0))),
            ("output_tokens", int(usage.get("output_tokens", 0))),
            ("agent_minutes", float(report.get("duration_minutes") or 0.0)),
            ("agent_wall_seconds", float(report.get("wall_seconds") or 0.0)),
        ):
            metrics[key] = metrics.get(key, 0) + value
    return {"tasks": tasks, "allocations": allocations, "events": events, "metrics": metrics}
