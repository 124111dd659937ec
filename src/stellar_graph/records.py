"""Typed records that cross between the control graph, the task runs and the runner.

The control graph (the orchestra's thread) decides; each task attempt runs on its own thread in
the task graph; a runner starts those runs and hands their outcomes back as control events.
These records are what travels between them. They are plain JSON (checkpoints stay portable
between SQLite, PostgreSQL and the LangGraph API server) and typed here once, so a misspelt key
or status fails type-checking.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

from typing_extensions import TypedDict

__all__ = [
    "ACTIVE_STATUSES",
    "AGENT_CALLS_NAMESPACE",
    "FINISHED_STATUSES",
    "RunHandle",
    "TaskOutcome",
    "TaskRunInput",
    "TaskStatus",
    "task_thread_id",
]

TaskStatus = Literal[
    "pending",  # waiting for its dependencies or for the allocator
    "held",  # a dependency failed and may still be retried (`dependency_failure: hold`)
    "allocated",  # bound to a free agent slot; its run starts in the same control run
    "queued",  # bound to an agent slot behind other work
    "running",  # its task run is in flight
    "escalating",  # waiting for a human decision
    "completed",
    "failed",
    "degraded",  # the ladder's fallback: a result that says no agent could do it
    "refused",  # no agent can ever take it (each agent's reason is recorded)
]

ACTIVE_STATUSES: frozenset[TaskStatus] = frozenset({"allocated", "queued", "running"})
"""Bound to an agent slot: counted in its load."""
FINISHED_STATUSES: frozenset[TaskStatus] = frozenset({"completed", "failed", "refused", "degraded"})

AGENT_CALLS_NAMESPACE = ("stellar_graph", "agent_calls")
"""Store namespace of finished model calls, keyed by the agent input's ``call_key`` (the task
run's thread): the agent's ``act`` step saves its answer there as soon as the model returns and,
run again after a crash (task runs checkpoint only at their end by default), returns the saved
answer instead of calling the model a second time. LangGraph's node cache (``CachePolicy``) writes in the background, after
the node returns, so a kill right after the call could lose it; this write is awaited."""


class TaskRunInput(TypedDict, total=False):
    """The input of one task run: one attempt of one task by one agent instance."""

    task: dict[str, Any]
    """The task's fields (``Task`` plus ``attempt``, ``recovery``, ``excluded_agents``)."""
    agent: dict[str, Any]
    """The agent instance's registry record (profile, ``agent_node``)."""
    attempt: int
    inbox: list[dict[str, Any]]
    """Bus messages for the agent, highest priority first; part of what it sees."""
    report_to: dict[str, str]
    """Set by the server runner: ``{"thread_id", "assistant_id"}`` of the orchestra the run's
    outcome is sent to (as a control run enqueued on its thread)."""


class RunHandle(TypedDict):
    """How the control state names a task run it started (kept on the task record as ``run``)."""

    task_id: str
    attempt: int
    thread_id: str
    """The task run's thread: a UUID derived from the orchestra thread, task and run number."""
    orchestra_thread: str
    input: TaskRunInput


class TaskOutcome(TypedDict, total=False):
    """What a finished task run hands back to the control graph (input key ``task_outcomes``).

    Applied once: the control graph takes it only while the task is ``running`` that same
    attempt on that same thread; a repeat (a redelivery after a restart) is ignored.
    """

    task_id: str
    attempt: int
    thread_id: str
    report: dict[str, Any]
    """The agent's report: ``status``, ``result``, ``error``, ``agent_error``, ``usage``,
    ``started_at``, ``finished_at``, ``wall_seconds``…"""


_NAMESPACE = uuid.UUID("6f1c2a52-9d0e-4a57-8a7e-5b1f1c3e7a10")


def task_thread_id(orchestra_thread: str, task_id: str, run: int) -> str:
    """The thread of a task's ``run``-th run: a UUID (the LangGraph API server accepts only
    UUIDs), the same for the same orchestra thread, task and run number, so a restart finds it."""
    return str(uuid.uuid5(_NAMESPACE, f"{orchestra_thread}\x1f{task_id}\x1f{run}"))
