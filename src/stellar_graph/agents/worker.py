"""The slot worker: one agent instance's slot works through its queue of tasks, one by one.

The orchestra sends one packet per (agent instance, slot) with the tasks queued on that slot.
The worker is a small looping subgraph, so each finished task is checkpointed in the worker's own
namespace: a slow task on one agent never holds back another agent's queue, and after a crash a
resumed worker continues after the last finished task instead of redoing the queue.
"""

from __future__ import annotations

import logging
import operator
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from langgraph.config import get_stream_writer
from langgraph.errors import GraphBubbleUp
from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph
from typing_extensions import TypedDict

__all__ = ["WorkerInput", "WorkerOutput", "create_slot_worker"]

logger = logging.getLogger(__name__)


class WorkerInput(TypedDict, total=False):
    """One slot's queue: the agent instance and its tasks in order."""

    agent: dict[str, Any]
    tasks: list[dict[str, Any]]
    slot: int
    inbox: list[dict[str, Any]]
    """Bus messages for the agent; they are part of what it sees on its first task."""
    failure_threshold: int
    """Agent errors in a row after which the agent is taken out and the rest is returned."""


class WorkerOutput(TypedDict, total=False):
    """One report per attempted task, in queue order; what was not attempted, and why."""

    reports: Annotated[list[dict[str, Any]], operator.add]
    agent_down: str | None
    """Why the agent was taken out (``failure_threshold`` agent errors in a row), if it was."""


class _WorkerState(WorkerInput, WorkerOutput, total=False):
    index: int
    errors_in_row: int


def create_slot_worker(
    agent: CompiledStateGraph[Any, Any, Any, Any], clock: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> StateGraph[Any, Any, Any, Any]:
    """Build the worker subgraph around a compiled agent subgraph.

    ``clock`` stamps ``started_at``/``finished_at``, so they share the orchestra's time source
    with allocation and submission times.
    """

    async def work(state: _WorkerState) -> dict[str, Any]:
        index = state.get("index", 0)
        task, record = state["tasks"][index], state["agent"]
        started, started_at = time.perf_counter(), clock().isoformat()
        try:
            inbox = (state.get("inbox") or []) if index == 0 else []
            out = await agent.ainvoke({"task": task, "agent": record, "attempt": task.get("attempt", 1), "inbox": inbox})
            report = dict(out["report"])
        except GraphBubbleUp:
            raise
        except Exception as exc:
            logger.warning("agent %s failed on task %s: %s", record["agent_id"], task["id"], type(exc).__name__)
            report = {
                "task_id": task["id"], "agent_id": record["agent_id"], "status": "failed", "agent_error": True,
                "error": f"{type(exc).__name__}: {exc}", "result": "", "usage": {}, "simulated": False,
                "finished_at": clock().isoformat(),
            }
        report["wall_seconds"] = round(time.perf_counter() - started, 4)
        report["started_at"] = started_at
        report["finished_at"] = clock().isoformat()
        get_stream_writer()({
            "type": "task_completed" if report["status"] == "completed" else "task_failed",
            "task_id": task["id"], "agent_id": record["agent_id"], "error": report.get("error"),
            "attempt": task.get("attempt", 1),
        })
        in_row = state.get("errors_in_row", 0) + 1 if report.get("agent_error") else 0
        update: dict[str, Any] = {"reports": [report], "index": index + 1, "errors_in_row": in_row}
        if in_row >= state.get("failure_threshold", 2):
            update["agent_down"] = f"{in_row} agent errors in a row; last: {report.get('error')}"
        return update

    def more(state: _WorkerState) -> Literal["work", "__end__"]:
        if state.get("agent_down"):
            return "__end__"  # the rest of the queue goes back to the board
        return "work" if state.get("index", 0) < len(state.get("tasks") or []) else "__end__"

    builder = StateGraph(_WorkerState, input_schema=WorkerInput, output_schema=WorkerOutput)
    builder.add_node("work", work)
    builder.add_edge(START, "work")
    builder.add_conditional_edges("work", more, ["work", END])
    return builder
