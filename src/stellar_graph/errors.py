"""Exceptions raised by stellar_graph.

The hierarchy::

    StellarGraphError
    ├─ ConfigurationError (also ValueError)     developer mistakes, found before anything runs
    │   └─ InvalidInputError                      a task, agent or scenario failed validation
    │       └─ DuplicateTaskError                 a task id that is already on the board or was run
    └─ OrchestrationError                         run-time failures
        ├─ UnknownAgentError (also KeyError)      an agent id or type that is not registered
        │   └─ UnknownRecipientError              a message recipient that resolves to no agent
        ├─ UnknownMessageError (also KeyError)    a message id the bus does not know
        ├─ QueueFullError                         the message bus refused a low-priority message
        ├─ DuplicateAgentError                    an agent id registered twice
        ├─ AllocationError                        no feasible agent for a task (carries reasons)
        ├─ TeamFormationError                     no team of available agents covers the skills
        └─ ModelBehaviorError                     the LLM answered something unusable

Every message says what happened, shows the offending value with ``!r`` and says how to fix it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = [
    "AllocationError",
    "ConfigurationError",
    "DuplicateAgentError",
    "DuplicateTaskError",
    "InvalidInputError",
    "ModelBehaviorError",
    "OrchestrationError",
    "QueueFullError",
    "StellarGraphError",
    "TeamFormationError",
    "UnknownAgentError",
    "UnknownMessageError",
    "UnknownRecipientError",
]


class StellarGraphError(Exception):
    """Base class of every exception raised by stellar_graph."""


class ConfigurationError(StellarGraphError, ValueError):
    """A configuration value, factory argument or prompt template is wrong.

    Attributes:
        field: dotted path of the offending key, when there is one.
        value: the offending value.
    """

    def __init__(self, message: str, *, field: str | None = None, value: object = None) -> None:
        super().__init__(message)
        self.field = field
        self.value = value


class InvalidInputError(ConfigurationError):
    """A task, agent profile, goal or scenario failed validation at the edge.

    Attributes:
        errors: one entry per problem: ``{"field": ..., "value": ..., "message": ...}``.
    """

    def __init__(self, message: str, *, errors: Sequence[Mapping[str, object]] = ()) -> None:
        first = errors[0] if errors else {}
        super().__init__(message, field=_str_or_none(first.get("field")), value=first.get("value"))
        self.errors = [dict(e) for e in errors]


class OrchestrationError(StellarGraphError):
    """Something went wrong while orchestrating work."""


class DuplicateTaskError(InvalidInputError):
    """A task id that the orchestra already holds (on its board or in its history).

    Attributes:
        task_id: the duplicate id.
    """

    def __init__(self, task_id: str, *, where: str = "already exists") -> None:
        self.task_id = task_id
        super().__init__(
            f"Invalid task {task_id!r}: `id`={task_id!r}: a task with this id {where}. "
            f"Fix: use a new id (for example '{_next_id(task_id)}'); follow the existing task with "
            "`monitor_task_execution`.",
            errors=[{"field": "id", "value": task_id, "message": f"a task with this id {where}"}],
        )


class UnknownAgentError(OrchestrationError, KeyError):
    """An agent id or agent type is not known to the orchestra.

    Attributes:
        agent: the unknown id or type.
        known: the ids or types that are known.
    """

    def __init__(
        self,
        agent: str,
        known: Sequence[str],
        *,
        kind: str = "agent id",
        fix: str = "register it first with `register_agent(...)` or check the spelling",
    ) -> None:
        self.agent = agent
        self.known = sorted(known)
        shown = ", ".join(repr(k) for k in self.known[:20]) or "none yet"
        super().__init__(f"Unknown {kind} {agent!r}. Known: {shown}. Fix: {fix}.")

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return str(self.args[0])


class DuplicateAgentError(OrchestrationError):
    """An agent id is registered twice."""

    def __init__(self, agent_id: str) -> None:
        self.agent_id = agent_id
        super().__init__(
            f"Agent id {agent_id!r} is already registered. "
            f"Fix: choose a new id (for example {agent_id!r} -> '{_next_id(agent_id)}') "
            "or keep using the registered instance."
        )


class AllocationError(OrchestrationError):
    """No registered agent can take a task.

    Attributes:
        task_id: the task that could not be placed.
        reasons: agent id -> why that agent is infeasible.
    """

    def __init__(self, task_id: str, reasons: Mapping[str, str]) -> None:
        self.task_id = task_id
        self.reasons = dict(reasons)
        listed = "; ".join(f"{a}: {r}" for a, r in list(self.reasons.items())[:10])
        more = f" (+{len(self.reasons) - 10} more)" if len(self.reasons) > 10 else ""
        super().__init__(
            f"No feasible agent for task {task_id!r}: {listed or 'no agents registered'}{more}. "
            f"Fix: register an agent with the missing skills, resources or capacity, "
            f"or relax the task's requirements."
        )


class ModelBehaviorError(OrchestrationError):
    """The language model replied with something that cannot be used.

    Attributes:
        agent: the agent (or role) whose model misbehaved.
        raw: the start of the raw reply, for diagnosis.
    """

    def __init__(self, message: str, *, agent: str, raw: str = "") -> None:
        super().__init__(message)
        self.agent = agent
        self.raw = raw[:500]


class QueueFullError(OrchestrationError):
    """The bus holds ``priority_queue_size`` undelivered messages and refused a new one.

    Raised only when the new message's priority is not above every queued message's priority;
    otherwise the bus sheds the lowest-priority, newest queued message instead. Nothing already
    queued is lost by a refusal.

    Attributes:
        queue_size: the bound (``priority_queue_size``).
        priority_level: the refused message's priority.
        lowest_queued: the lowest priority currently queued.
    """

    def __init__(
        self, message_id: str, *, queue_size: int, priority_level: int, lowest_queued: int
    ) -> None:
        self.message_id = message_id
        self.queue_size = queue_size
        self.priority_level = priority_level
        self.lowest_queued = lowest_queued
        super().__init__(
            f"Message queue is full (priority_queue_size={queue_size}); message {message_id!r} "
            f"with priority_level={priority_level} was refused because every queued message "
            f"has priority >= {lowest_queued}. Fix: let the recipients consume (await "
            f"bus.receive(...)), raise priority_queue_size, or send with priority_level > "
            f"{lowest_queued} to displace the lowest-priority queued message."
        )


class UnknownMessageError(OrchestrationError, KeyError):
    """A message id that the bus does not know (never sent, or its receipts were forgotten).

    Attributes:
        message_id: the unknown id.
    """

    def __init__(self, message_id: str, *, hint: str = "") -> None:
        self.message_id = message_id
        super().__init__(
            f"Unknown message id {message_id!r}. "
            f"{hint or 'Fix: use the id returned by send_priority_message(...).'}"
        )

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return str(self.args[0])


class UnknownRecipientError(UnknownAgentError):
    """A recipient that resolves to no registered agent.

    Attributes:
        agent: the unknown recipient as written.
        known: every recipient the bus can resolve (ids, ``type:``/``group:`` names,
            ``all-agents``).
    """

    def __init__(self, recipient: str, known: Sequence[str], *, detail: str = "") -> None:
        super().__init__(recipient, known, kind="recipient")
        shown = ", ".join(repr(k) for k in self.known[:20]) or "none registered yet"
        more = f" (+{len(self.known) - 20} more)" if len(self.known) > 20 else ""
        self.args = (
            f"Unknown recipient {recipient!r}{detail}. Known: {shown}{more}. Fix: "
            f"`bus.register(agent_id, agent_type=..., groups=[...])` first, or address an agent "
            f"id, 'type:<AgentType>', 'group:<name>' or 'all-agents'.",
        )


class TeamFormationError(OrchestrationError):
    """No team of available agents covers the required skills.

    Attributes:
        uncovered: the skills nobody available holds.
        reasons: agent id -> why it was left out (unhealthy, full, not a candidate...).
    """

    def __init__(
        self, message: str, *, uncovered: Sequence[str], reasons: Mapping[str, str]
    ) -> None:
        super().__init__(message)
        self.uncovered = list(uncovered)
        self.reasons = dict(reasons)


def _next_id(agent_id: str) -> str:
    head, sep, tail = agent_id.rpartition("-")
    if sep and tail.isdigit():
        return f"{head}-{int(tail) + 1:0{len(tail)}d}"
    return f"{agent_id}-2"


def _str_or_none(value: object) -> str | None:
    return None if value is None else str(value)
