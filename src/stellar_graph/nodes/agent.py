"""Agent-type nodes: run one agent subgraph for one task and write its report to the board."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

from langgraph.errors import GraphBubbleUp
from langgraph.graph.state import CompiledStateGraph

from stellar_graph.agents.factory import AgentInput
from stellar_graph.board import allocation_id_for
from stellar_graph.nodes import AgentNode

__all__ = ["make_agent_node"]

logger = logging.getLogger(__name__)


def make_agent_node(name: str, agent: CompiledStateGraph[Any, Any, Any, Any]) -> AgentNode:
    """Wrap a compiled agent subgraph as the node that ``Send`` packets go to.

    The wrapper (rather than adding the subgraph directly) keeps the agent's private keys out of
    the orchestra's state and turns an agent's exception into a recorded failure, so one failing
    agent never cancels its siblings in the same superstep.
    """

    async def run_agent(state: AgentInput) -> dict[str, Any]:
        packet: dict[str, Any] = dict(state)  # the Send packet for this task
        task, agent_record = packet["task"], packet["agent"]
        started = time.perf_counter()
        try:
            out = await agent.ainvoke(packet)
            report = out["report"]
        except GraphBubbleUp:
            raise
        except Exception as exc:
            logger.warning("agent %s failed on task %s: %s", agent_record["agent_id"], task["id"], type(exc).__name__)
            report = {
                "task_id": task["id"], "agent_id": agent_record["agent_id"], "status": "failed",
                "error": f"{type(exc).__name__}: {exc}", "result": "", "usage": {}, "simulated": False,
                "finished_at": datetime.now(UTC).isoformat(),
            }
        return _report_update(packet, report, time.perf_counter() - started)

    run_agent.__name__ = f"run_{name}"
    return run_agent


def _report_update(packet: dict[str, Any], report: dict[str, Any], wall_seconds: float) -> dict[str, Any]:
    task = packet["task"]
    usage = report.get("usage") or {}
    status = report["status"]
    patch = {
        "status": status,
        "result": report.get("result"),
        "error": report.get("error"),
        "report": report,
        "finished_at": report.get("finished_at"),
        "wall_seconds": round(wall_seconds, 4),
    }
    return {
        "tasks": {task["id"]: patch},
        "allocations": {allocation_id_for(task["id"]): {"status": status}},
        "events": [{"type": "task_completed" if status == "completed" else "task_failed",
                    "task_id": task["id"], "agent_id": report.get("agent_id"), "error": report.get("error")}],
        "metrics": {
            "agent_calls": 1,
            "tasks_completed": int(status == "completed"),
            "tasks_failed": int(status != "completed"),
            "input_tokens": int(usage.get("input_tokens", 0)),
            "output_tokens": int(usage.get("output_tokens", 0)),
            "agent_minutes": float(report.get("duration_minutes") or 0.0),
            "agent_wall_seconds": wall_seconds,
        },
    }
