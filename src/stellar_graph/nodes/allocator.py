"""``allocator`` and ``dispatch``: decide who does what, then fan the work out with ``Send``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from langgraph.types import Command, Send

from stellar_graph.board import plan_allocations
from stellar_graph.config import OrchestraConfig
from stellar_graph.nodes import StateNode
from stellar_graph.state import OrchestraState

__all__ = ["make_allocator", "make_dispatch"]


def make_allocator(config: OrchestraConfig, clock: Callable[[], datetime]) -> StateNode:
    """Build the allocator node: score ready tasks against agents and assign under capacity."""
    alloc = config.task_allocation

    def allocator(state: OrchestraState) -> dict[str, Any]:
        now = clock()
        plan = plan_allocations(
            state.get("tasks") or {},
            state.get("agents") or {},
            weights=alloc.weights,
            now=now,
            strategy=alloc.strategy,
            past_deadline=alloc.past_deadline,
        )
        statuses = [a["status"] for a in plan.allocations.values()]
        events = [
            {"type": "task_allocated" if a["status"] == "allocated" else f"task_{a['status']}",
             "task_id": a["task_id"], "agent_id": a["agent_id"], "at": now.isoformat()}
            for a in plan.allocations.values()
        ]
        return {
            "tasks": plan.task_patches,
            "allocations": plan.allocations,
            "events": events,
            "metrics": {
                "allocations": statuses.count("allocated"),
                "refusals": statuses.count("refused"),
                "tasks_failed": sum(1 for p in plan.task_patches.values() if p.get("status") == "failed"),
            },
        }

    return allocator


def make_dispatch(clock: Callable[[], datetime]) -> StateNode:
    """Build the dispatch node: one ``Send`` per allocated task to its agent type's subgraph node."""

    def dispatch(state: OrchestraState) -> Command[Any]:
        tasks, agents = state.get("tasks") or {}, state.get("agents") or {}
        ready = sorted((t for t in tasks.values() if t.get("status") == "allocated"), key=lambda t: t["seq"])
        if not ready:
            return Command(goto="optimizer")
        now = clock().isoformat()
        sends = []
        for task in ready:
            agent = agents[task["agent_id"]]
            packet = {"task": _task_fields(task), "agent": agent, "attempt": task.get("attempt", 1), "inbox": []}
            sends.append(Send(agent["agent_node"], packet))
        patches = {t["id"]: {"status": "running", "started_at": now} for t in ready}
        allocs = {t["allocation_id"]: {"status": "running"} for t in ready}
        return Command(update={"tasks": patches, "allocations": allocs}, goto=sends)

    return dispatch


_TASK_FIELDS = (
    "id", "description", "priority", "deadline", "required_skills", "estimated_duration_minutes",
    "resources", "dependencies", "success_criteria", "token_budget",
)


def _task_fields(record: dict[str, Any]) -> dict[str, Any]:
    return {k: record.get(k) for k in _TASK_FIELDS}
