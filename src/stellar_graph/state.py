"""The orchestra graph's state: key names, schemas and named reducers.

Everything here is JSON-able (dicts, lists, strings, numbers) so that checkpoints stay portable
between SQLite, PostgreSQL and the LangGraph API server. Reducers are pure top-level functions.

Records keyed by id (agents, tasks, allocations) merge *per record*: an update ``{id: patch}``
shallow-merges ``patch`` into the existing record, so parallel agent branches can each report
their own task in the same step without clobbering each other.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from typing_extensions import TypedDict

__all__ = [
    "AGENTS",
    "ALLOCATIONS",
    "COLLABORATIONS",
    "EVENTS",
    "MAX_DELIVERED",
    "MAX_EVENTS",
    "METRICS",
    "REGISTER_AGENTS",
    "START_COLLABORATIONS",
    "SUBMIT_TASKS",
    "TASKS",
    "TASK_OUTCOMES",
    "OrchestraInput",
    "OrchestraOutput",
    "OrchestraState",
    "add_counters",
    "append_delivered",
    "merge_mailbox",
    "append_events",
    "merge_records",
]

# Key names, defined once. They are saved in checkpoints: renaming one is a breaking change.
SUBMIT_TASKS = "submit_tasks"
START_COLLABORATIONS = "start_collaborations"
COLLABORATIONS = "collaborations"
REGISTER_AGENTS = "register_agents"
AGENTS = "agents"
TASKS = "tasks"
TASK_OUTCOMES = "task_outcomes"
ALLOCATIONS = "allocations"
METRICS = "metrics"
EVENTS = "events"

MAX_DELIVERED = 1000
"""How many delivered message ids are remembered to drop redeliveries (bounded state)."""

MAX_EVENTS = 50
"""Only the most recent events stay in the checkpoint (bounded state); handlers see them all."""


def merge_records(
    current: dict[str, dict[str, Any]] | None, update: dict[str, dict[str, Any] | None] | None
) -> dict[str, dict[str, Any]]:
    """Merge ``{id: patch}`` into ``{id: record}``; a ``None`` patch deletes the record."""
    merged = dict(current or {})
    for key, patch in (update or {}).items():
        if patch is None:
            merged.pop(key, None)
        else:
            merged[key] = {**merged.get(key, {}), **patch}
    return merged


def merge_mailbox(
    current: dict[str, dict[str, Any]] | None, update: dict[str, dict[str, Any] | None] | None
) -> dict[str, dict[str, Any]]:
    """Per agent, merge ``{message_id: message}``; a ``None`` message deletes it, as does an
    emptied mailbox (agents without messages disappear)."""
    merged = {agent: dict(box) for agent, box in (current or {}).items()}
    for agent, patch in (update or {}).items():
        box = merged.setdefault(agent, {})
        for message_id, message in (patch or {}).items():
            if message is None:
                box.pop(message_id, None)
            else:
                box[message_id] = message
        if not box:
            merged.pop(agent)
    return merged


def append_delivered(current: list[str] | None, update: list[str] | None) -> list[str]:
    """Remember delivered message ids, newest :data:`MAX_DELIVERED` only."""
    merged = [*(current or []), *(update or [])]
    return merged[-MAX_DELIVERED:]


def add_counters(current: dict[str, float] | None, update: dict[str, float] | None) -> dict[str, float]:
    """Add numeric counters key by key (metrics written by parallel branches add up)."""
    merged = dict(current or {})
    for key, value in (update or {}).items():
        merged[key] = merged.get(key, 0) + value
    return merged


def append_events(current: list[dict[str, Any]] | None, update: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """Append events, keeping the newest :data:`MAX_EVENTS`."""
    merged = [*(current or []), *(update or [])]
    return merged[-MAX_EVENTS:]


class OrchestraInput(TypedDict, total=False):
    """What a caller sends in one run: new tasks and/or new agent instances."""

    submit_tasks: list[dict[str, Any]]
    """Tasks to add (``Task`` fields)."""
    register_agents: list[dict[str, Any]]
    """Agent instances to register (``AgentProfile`` fields)."""
    start_collaborations: list[dict[str, Any]]
    """Collaboration goals to start: ``{"goal": {...}, "agent_ids": [...]}`` each."""
    set_agent_health: list[dict[str, Any]]
    """Health changes from outside the graph: ``{"agent_id", "healthy": bool, "reason"}`` each."""
    escalate_tasks: list[str]
    """Failed tasks to hand to a human (the ladder's ``escalate`` rung, on request)."""
    deliver_messages: list[dict[str, Any]]
    """Bus messages handed to agents: ``{"agent_id": ..., "message": {...}}`` each."""
    task_outcomes: list[dict[str, Any]]
    """Outcomes of finished task runs (:class:`~stellar_graph.records.TaskOutcome`), each applied once."""
    allocation_strategy: Literal["auto", "optimal", "fast", "greedy"]
    """Override ``task_allocation.strategy`` for this run (``optimal``, ``fast``, ``greedy``, ``auto``)."""


class OrchestraOutput(TypedDict, total=False):
    """What a run returns: the task board, the allocations, collaborations and the counters."""

    tasks: Annotated[dict[str, dict[str, Any]], merge_records]
    collaborations: Annotated[dict[str, dict[str, Any]], merge_records]
    """Collaboration id -> record: goal, plan, bids, awards, results, votes, conflicts, outcome."""
    allocations: Annotated[dict[str, dict[str, Any]], merge_records]
    metrics: Annotated[dict[str, float], add_counters]


class OrchestraState(OrchestraInput, OrchestraOutput, total=False):
    """The full checkpointed state of one orchestra thread."""

    agents: Annotated[dict[str, dict[str, Any]], merge_records]
    """Registry: agent id -> profile (JSON) plus ``healthy`` and ``prompt_tokens``."""
    events: Annotated[list[dict[str, Any]], append_events]
    mailbox: Annotated[dict[str, dict[str, Any]], merge_mailbox]
    """Agent id -> messages waiting for the agent's next task (message id -> message)."""
    delivered_messages: Annotated[list[str], append_delivered]
    imbalance: dict[str, Any]
    """The last allocator pass's workload imbalance: ``{"active": bool, "ratio": float, "review":
    bool}``; ``review`` is set by a ``workload_imbalance`` event until the optimizer reviews."""
    learning: dict[str, Any]
    """What the optimizer has learned, as of this thread's last run (the Store holds the state)."""
