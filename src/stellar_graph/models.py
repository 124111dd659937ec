"""Edge models: what users hand to the orchestra, validated once at the edge.

Inside the graph the same data travels as plain JSON-able dicts (``model_dump(mode="json")``) so
that checkpoints stay small and portable; the core trusts them.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    field_validator,
    model_validator,
)

from stellar_graph.errors import InvalidInputError

__all__ = [
    "DEFAULT_CAPACITY",
    "FACTORS",
    "Allocation",
    "AgentProfile",
    "CollaborationPreferences",
    "AgentRequest",
    "OrchestraRequest",
    "Priority",
    "Task",
    "as_utc",
    "format_validation_error",
    "parse_model",
]

Priority = Literal["low", "medium", "high", "critical"]
PRIORITY_RANK: dict[str, int] = {"low": 0, "medium": 1, "high": 2, "critical": 3}
DEFAULT_CAPACITY = 3
"""Concurrent tasks of an agent whose profile does not say (records without the key read it too)."""
FACTORS = ("skills", "resources", "workload", "deadline", "collaboration")
AllocationStatus = Literal["queued", "allocated", "running", "completed", "failed", "refused"]

MAX_TOKEN_BUDGET = 100_000_000
"""Larger budgets are refused: no model takes such a prompt, and the number must fit a checkpoint."""

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$")
_ID_HELP = "letters, digits, '_', '.', ':' or '-', starting with a letter or digit, at most 128"


def as_utc(value: datetime | None) -> datetime | None:
    """A naive datetime is taken as UTC; an aware one is kept as given."""
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


def _check_id(value: str, what: str) -> str:
    if not _ID.match(value):
        raise ValueError(f"{what} {value!r} is not a valid id ({_ID_HELP} characters)")
    return value


def check_amounts(values: Mapping[str, float], what: str) -> dict[str, float]:
    """Amounts (resources, weights) must be finite numbers >= 0: NaN passes every comparison, so
    a task needing ``gpu: NaN`` would fit any agent."""
    bad = {k: x for k, x in values.items() if not (math.isfinite(x) and x >= 0)}
    if bad:
        raise ValueError(f"{what} must be finite numbers >= 0, got {bad!r}")
    return dict(values)


def _clean_skills(values: list[str]) -> list[str]:
    cleaned = [v.strip().lower().replace(" ", "_") for v in values]
    if any(not v for v in cleaned):
        raise ValueError("skill names must be non-empty strings")
    return list(dict.fromkeys(cleaned))


def split_commas(value: Any) -> Any:
    """A comma-separated string as a list of its non-blank parts (``"ml, stats"`` ->
    ``["ml", "stats"]``): a form field or a command line has no list; anything else unchanged."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


CommaList = Annotated[list[str], BeforeValidator(split_commas)]
"""A list of strings that also accepts one comma-separated string."""


class _Edge(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class Task(_Edge):
    """A unit of work to allocate to one agent.

    Example:
        >>> Task(id="t1", description="Summarise", required_skills=["research_coordination"])
        Task(id='t1', ...)
    """

    id: str = Field(description="Unique task id.")
    description: str = Field(min_length=1, description="What the agent must do.")
    priority: Priority = "medium"
    deadline: datetime | None = Field(default=None, description="When the task is due (UTC).")
    required_skills: CommaList = Field(min_length=1, description="Skills an agent needs.")
    estimated_duration_minutes: float = Field(default=60.0, gt=0, le=60 * 24 * 365)
    resources: dict[str, float] = Field(
        default_factory=dict, description="Resource name -> amount the task needs."
    )
    dependencies: CommaList = Field(default_factory=list, description="Ids of prerequisite tasks.")
    success_criteria: CommaList = Field(default_factory=list)
    token_budget: int | None = Field(
        default=None, gt=0, le=MAX_TOKEN_BUDGET, description="Upper bound on the agent call's prompt tokens."
    )
    preferred_agents: CommaList = Field(
        default_factory=list,
        description="Agent ids or types the requester prefers (collaboration factor).",
    )
    require_all_skills: bool = Field(
        default=False,
        description="If true an agent must hold every required skill; else at least one.",
    )

    def __repr__(self) -> str:  # keep doctest-like reprs short
        return f"Task(id={self.id!r}, ...)"

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        return _check_id(v, "task id")

    @field_validator("required_skills")
    @classmethod
    def _skills(cls, v: list[str]) -> list[str]:
        return _clean_skills(v)

    @field_validator("deadline")
    @classmethod
    def _utc(cls, v: datetime | None) -> datetime | None:
        return as_utc(v)

    @field_validator("resources")
    @classmethod
    def _resources(cls, v: dict[str, float]) -> dict[str, float]:
        return check_amounts(v, "resource amounts")

    @model_validator(mode="after")
    def _no_self_dependency(self) -> Task:
        if self.id in self.dependencies:
            raise ValueError(f"task {self.id!r} cannot depend on itself")
        return self


class CollaborationPreferences(_Edge):
    """Who an agent likes to work with; feeds the collaboration factor."""

    preferred_partners: CommaList = Field(default_factory=list)
    avoided_partners: CommaList = Field(default_factory=list)


class AgentProfile(_Edge):
    """A registered agent instance (``atlas-001``) of an agent type (``AtlasAgent``).

    ``capabilities`` and ``specializations`` are skills; a list gives each skill level 1.0, a
    mapping gives explicit levels in (0, 1].
    """

    agent_id: str
    agent_type: str = Field(min_length=1)
    capabilities: Annotated[list[str] | dict[str, float], BeforeValidator(split_commas)] = Field(default_factory=list)
    specializations: Annotated[list[str] | dict[str, float], BeforeValidator(split_commas)] = Field(default_factory=list)
    capacity: int = Field(default=DEFAULT_CAPACITY, ge=1, le=10_000, description="Concurrent tasks.")
    resources: dict[str, float] = Field(default_factory=dict)
    collaboration_preferences: CollaborationPreferences = Field(
        default_factory=CollaborationPreferences
    )
    speed: float = Field(default=1.0, gt=0, le=100, description="Relative speed; 2.0 = twice as fast.")
    reliability: float = Field(
        default=0.9, gt=0, le=1, description="Prior success probability (used by simulation)."
    )
    model: str | None = Field(
        default=None, min_length=1, max_length=200,
        description="This instance's chat model (for example 'gpt-4o-mini'); default its type's model.",
    )

    @field_validator("agent_id")
    @classmethod
    def _id(cls, v: str) -> str:
        return _check_id(v, "agent id")

    @field_validator("resources")
    @classmethod
    def _resources(cls, v: dict[str, float]) -> dict[str, float]:
        return check_amounts(v, "resource amounts")

    @field_validator("capabilities", "specializations")
    @classmethod
    def _levels(cls, v: list[str] | dict[str, float]) -> list[str] | dict[str, float]:
        if isinstance(v, dict):
            bad = {k: x for k, x in v.items() if not 0 < x <= 1}  # False for NaN: refused too
            if bad:
                raise ValueError(f"skill levels must be in (0, 1], got {bad!r}")
            return dict(zip(_clean_skills(list(v)), v.values(), strict=True))
        return _clean_skills(v)

    @model_validator(mode="after")
    def _has_skills(self) -> AgentProfile:
        if not self.capabilities and not self.specializations:
            raise ValueError(
                "an agent needs at least one capability or specialization "
                "(empty skills cannot match any task)"
            )
        return self

    def skill_levels(self) -> dict[str, float]:
        """Every skill of the agent with its level (the higher of the two lists wins)."""
        levels: dict[str, float] = {}
        for group in (self.capabilities, self.specializations):
            items = group.items() if isinstance(group, dict) else ((s, 1.0) for s in group)
            for skill, level in items:
                levels[skill] = max(level, levels.get(skill, 0.0))
        return levels


class Allocation(_Edge):
    """The orchestra's decision for one task, with the reasons behind it."""

    allocation_id: str
    task_id: str
    agent_id: str | None
    agent_type: str | None = None
    score: float = 0.0
    breakdown: dict[str, float] = Field(default_factory=dict, description="Factor -> [0, 1].")
    weights: dict[str, float] = Field(default_factory=dict)
    status: AllocationStatus = "allocated"
    reasons: dict[str, str] = Field(
        default_factory=dict, description="Infeasible agent id -> why (refusals and queueing)."
    )
    explanation: str = ""
    alternatives: list[dict[str, Any]] = Field(default_factory=list)
    slot: int | None = Field(default=None, description="The agent's slot (0..capacity-1) the task runs on.")
    queue_position: int | None = Field(default=None, description="Tasks ahead of it on that slot.")
    predicted_start_minutes: float | None = None
    predicted_duration_minutes: float | None = None
    predicted_interval: dict[str, Any] | None = Field(
        default=None, description="90% completion interval: median, lower, upper, method, source."
    )
    predicted_completion: datetime | None = None
    predicted_completion_upper: datetime | None = None
    likely_late: bool = False
    estimated_prompt_tokens: int | None = None
    decision: dict[str, Any] | None = None
    """In ``adaptive`` mode, the learner's pick among near-best agents: ``candidates``, ``index``,
    ``propensity`` (its probability), their ``factors`` and learned ``estimates``."""
    overdue: bool = False
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HealthChange(_Request):
    """One ``set_agent_health`` item."""

    agent_id: str = Field(min_length=1)
    healthy: StrictBool
    reason: str = ""


class MessageDelivery(_Request):
    """One ``deliver_messages`` item: a bus message handed to an agent."""

    agent_id: str = Field(min_length=1)
    message: dict[str, Any]

    @field_validator("message")
    @classmethod
    def _has_id(cls, message: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(message.get("message_id"), str) or not message["message_id"]:
            raise ValueError("a message needs a non-empty string `message_id`")
        return message


class CollaborationStart(BaseModel):
    """One ``start_collaborations`` item (the collaboration node checks the goal's fields)."""

    goal: dict[str, Any]
    agent_ids: list[str] | None = None


class OutcomeRecord(_Request):
    """One ``task_outcomes`` item (:class:`~stellar_graph.records.TaskOutcome`)."""

    task_id: str = Field(min_length=1)
    attempt: int = Field(ge=1)
    thread_id: str = Field(min_length=1)
    report: dict[str, Any]


class OrchestraRequest(_Request):
    """The shape of one control-graph input (``OrchestraInput``), checked before it is queued.

    Each key's items are checked for what the nodes index into; the tasks and agents themselves
    are checked against the board by :mod:`stellar_graph.submission` (duplicates, unknown agents).
    An input that fails here never reaches a control run, so it cannot stop the thread.
    """

    submit_tasks: list[dict[str, Any]] = []
    register_agents: list[dict[str, Any]] = []
    start_collaborations: list[CollaborationStart] = []
    set_agent_health: list[HealthChange] = []
    escalate_tasks: list[str] = []
    deliver_messages: list[MessageDelivery] = []
    task_outcomes: list[OutcomeRecord] = []
    allocation_strategy: Literal["auto", "optimal", "fast", "greedy"] | None = None


class _TaskRef(BaseModel):
    id: str = Field(min_length=1)
    description: str


class _AgentRef(BaseModel):
    agent_id: str = Field(min_length=1)


class AgentRequest(BaseModel):
    """The shape of an agent graph's input (``AgentInput``) where it comes from outside (the
    served ``/agents/<name>`` routes): what the agent's steps index into."""

    task: dict[str, Any]
    agent: dict[str, Any]
    attempt: int = Field(default=1, ge=1)
    inbox: list[dict[str, Any]] = []

    @field_validator("task")
    @classmethod
    def _task(cls, task: dict[str, Any]) -> dict[str, Any]:
        _TaskRef.model_validate(task)
        return task

    @field_validator("agent")
    @classmethod
    def _agent(cls, agent: dict[str, Any]) -> dict[str, Any]:
        _AgentRef.model_validate(agent)
        return agent


M = TypeVar("M", bound=BaseModel)


def format_validation_error(kind: str, exc: ValidationError, data: object = None) -> str:
    """Turn a pydantic error into one message naming each field, its bad value and a fix."""
    parts = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err["loc"]) or "(root)"
        value = err.get("input")
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field; remove it or check the spelling"
        elif err["type"] == "missing":
            msg = "required field is missing; add it"
        parts.append(f"`{field}`={value!r}: {msg}")
    ident = _identity(data)
    return f"Invalid {kind}{ident}: " + "; ".join(parts) + ". Fix the field(s) named above."


def parse_model(model: type[M], data: object, *, kind: str) -> M:
    """Validate ``data`` into ``model`` or raise :class:`InvalidInputError` naming the fields."""
    if isinstance(data, model):
        return data
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"]), "value": e.get("input"), "message": e["msg"]}
            for e in exc.errors()
        ]
        raise InvalidInputError(format_validation_error(kind, exc, data), errors=errors) from None


def _identity(data: object) -> str:
    if isinstance(data, Mapping):
        for key in ("id", "agent_id", "task_id"):
            if isinstance(data.get(key), str):
                return f" {data[key]!r}"
    return ""
