"""``dispatch``: start the task runs the allocator made possible, and return at once.

A slot's head task (``allocated``, or ``queued`` whose slot just freed) becomes ``running`` with
a run handle (its own thread, a UUID derived from the orchestra thread, the task and the
attempt); the runner in the run context starts it. The control run never waits for agent work.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Literal

from langchain_core.runnables import RunnableConfig
from langgraph.runtime import Runtime
from langgraph.types import Command

from stellar_graph.board import FINISHED
from stellar_graph.records import RunHandle, TaskRunInput, task_thread_id
from stellar_graph.runtime.context import OrchestraContext
from stellar_graph.runtime.runners import TaskRunner
from stellar_graph.state import OrchestraState

__all__ = ["make_dispatch", "slot_heads"]

Next = Literal["optimizer", "escalation", "__end__"]


def make_dispatch(clock: Callable[[], datetime], runner: TaskRunner | None = None) -> Callable[..., Any]:
    """Build the dispatch node; ``runner`` starts the runs unless the run context brings one."""

    async def dispatch(state: OrchestraState, config: RunnableConfig, runtime: Runtime[Any]) -> Command[Next]:
        tasks, agents = state.get("tasks") or {}, state.get("agents") or {}
        thread = str((config.get("configurable") or {}).get("thread_id", ""))
        mailbox, now = state.get("mailbox") or {}, clock().isoformat()
        patches: dict[str, dict[str, Any]] = {}
        handles: list[RunHandle] = []
        read: dict[str, list[str]] = {}
        for task in slot_heads(tasks):
            agent_id, attempt = task["agent_id"], int(task.get("attempt", 1))
            inbox: list[dict[str, Any]] = []
            if agent_id in mailbox and agent_id not in read:  # the agent's next task carries its mail
                inbox = _by_priority(mailbox[agent_id])
                read[agent_id] = [m["message_id"] for m in inbox]
            runs = int(task.get("runs", 0)) + 1  # attempts restart at 0 after a human's retry; runs never do
            handle = RunHandle(
                task_id=task["id"], attempt=attempt, thread_id=task_thread_id(thread, task["id"], runs), orchestra_thread=thread,
                input=TaskRunInput(task=_task_fields(task), agent=dict(agents[agent_id]), attempt=attempt, inbox=inbox),
            )
            handles.append(handle)
            patches[task["id"]] = {"status": "running", "started_at": now, "run": dict(handle), "runs": runs}
        context = runtime.context if isinstance(runtime.context, OrchestraContext) else None
        starter = context.runner if context is not None and context.runner is not None else runner
        if handles and starter is not None:
            await starter.start(handles)
        update: dict[str, Any] = {"tasks": patches}
        if read:
            update["mailbox"] = {agent: dict.fromkeys(ids) for agent, ids in read.items()}
            update["delivered_messages"] = [m for ids in read.values() for m in ids]
        return Command(update=update, goto=after_dispatch({**tasks, **{t: {**tasks[t], **p} for t, p in patches.items()}}, state))

    return dispatch


def slot_heads(tasks: Mapping[str, Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Tasks to start now: per (agent, slot) with nothing running, its first bound task."""
    busy = {(t["agent_id"], int(t.get("slot") or 0)) for t in tasks.values() if t.get("status") == "running"}
    heads: dict[tuple[str, int], Mapping[str, Any]] = {}
    for task in sorted(tasks.values(), key=lambda t: (int(t.get("queue_position") or 0), int(t.get("seq", 0)))):
        if task.get("status") not in {"allocated", "queued"} or not task.get("agent_id"):
            continue
        key = (task["agent_id"], int(task.get("slot") or 0))
        if key not in busy and key not in heads:
            heads[key] = task
    return list(heads.values())


def after_dispatch(tasks: Mapping[str, Mapping[str, Any]], state: OrchestraState) -> Next:
    """Learn from newly finished work, then a human for escalated tasks; else the run ends."""
    if any(t.get("status") in FINISHED and not t.get("learned") for t in tasks.values()):
        return "optimizer"
    if (state.get("imbalance") or {}).get("review"):
        return "optimizer"
    return "escalation" if any(t.get("status") == "escalating" for t in tasks.values()) else "__end__"


def _by_priority(box: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Highest priority first, then oldest first (the bus's own order)."""
    return sorted(box.values(), key=lambda m: (-int(m.get("priority_level", 5)), str(m.get("created_at", ""))))


_TASK_FIELDS = (
    "id", "description", "priority", "deadline", "required_skills", "estimated_duration_minutes",
    "resources", "dependencies", "success_criteria", "token_budget", "attempt", "excluded_agents", "recovery",
)


def _task_fields(record: Mapping[str, Any]) -> dict[str, Any]:
    return {k: record.get(k) for k in _TASK_FIELDS}
