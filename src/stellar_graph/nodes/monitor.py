"""``monitor``: take stock after a wave of agent work and decide whether to allocate again."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

from langgraph.config import get_stream_writer

from stellar_graph.board import FINISHED, ready_tasks
from stellar_graph.nodes import StateNode
from stellar_graph.nodes.escalation import after_work
from stellar_graph.state import OrchestraState

__all__ = ["make_monitor", "route_after_monitor"]


def make_monitor(clock: Callable[[], datetime]) -> StateNode:
    """Build the monitor node: record end-to-end latencies of newly finished tasks, stream progress."""

    def monitor(state: OrchestraState) -> dict[str, Any]:
        tasks = state.get("tasks") or {}
        fresh = [t for t in tasks.values() if t.get("status") in FINISHED and not t.get("monitored")]
        latency = 0.0
        for t in fresh:
            if t.get("finished_at") and t.get("submitted_at"):
                delta = datetime.fromisoformat(t["finished_at"]) - datetime.fromisoformat(t["submitted_at"])
                latency += delta.total_seconds()
        writer = get_stream_writer()
        writer({
            "type": "progress",
            "finished": sum(1 for t in tasks.values() if t.get("status") in FINISHED),
            "total": len(tasks),
            "at": clock().isoformat(),
        })
        return {
            "tasks": {t["id"]: {"monitored": True} for t in fresh},
            "metrics": {"latency_seconds_total": latency, "latency_samples": len(fresh), "waves": 1},
        }

    return monitor


def route_after_monitor(state: OrchestraState) -> Literal["allocator", "escalation", "optimizer"]:
    """Back to the allocator while tasks wait whose dependencies are settled; then a human for
    escalated tasks; else optimise."""
    ready, doomed = ready_tasks(state.get("tasks") or {})
    return "allocator" if ready or doomed else after_work(state)
