"""Edge models of collaborations, the LLM's structured-output schemas, and the team error.

A collaboration request arrives as ``{"goal": {...}, "agent_ids": [...]}`` (plus options) and is
validated once here; inside the graph it travels as the JSON dict of :class:`CollaborationRequest`.

The LLM schemas (:class:`GoalPlan`, :class:`CollaborationVote`, :class:`MediatorRuling`) have no
defaults and no free-form objects, so they are valid OpenAI *strict* JSON schemas; what they
cannot express (known dependency ids, allowed decisions) is checked after parsing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from stellar_graph.consensus import Rule
from stellar_graph.errors import InvalidInputError, TeamFormationError
from stellar_graph.models import Priority, as_utc, parse_model

__all__ = [
    "CollaborationGoal",
    "CollaborationRequest",
    "CollaborationVote",
    "ConsensusSettings",
    "GoalPlan",
    "MediatorRuling",
    "PlanStep",
    "TeamFormationError",
    "TeamRequirements",
    "parse_request",
]

_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$"


def _clean_skills(values: Sequence[str]) -> list[str]:
    cleaned = [str(v).strip().lower().replace(" ", "_").replace("-", "_") for v in values]
    if any(not v for v in cleaned):
        raise ValueError("skill names must be non-empty strings")
    return list(dict.fromkeys(cleaned))


class _Edge(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class CollaborationGoal(_Edge):
    """What a team of agents should achieve together (the seed's collaboration goal).

    Example:
        >>> CollaborationGoal(id="g1", description="Synthesise ethical guidelines",
        ...     objective="A framework", success_criteria=["stakeholder_approval"]).priority
        'medium'
    """

    id: str = Field(pattern=_ID_PATTERN, description="Unique collaboration id.")
    description: str = Field(min_length=1, description="What the team works on.")
    objective: str = Field(
        default="", description="The intended outcome; defaults to the description."
    )
    success_criteria: list[str] = Field(
        min_length=1, description="What the result must satisfy; the team votes against these."
    )
    priority: Priority = "medium"
    required_skills: list[str] = Field(
        default_factory=list, description="Skills the goal needs (hints for planning)."
    )
    deadline: datetime | None = None
    shared_resources: dict[str, float] = Field(
        default_factory=dict,
        description="Resources the team shares (name -> units); a plan step holds one unit while it runs.",
    )
    max_subtasks: int = Field(default=8, ge=1, le=20)

    @field_validator("required_skills")
    @classmethod
    def _skills(cls, v: list[str]) -> list[str]:
        return _clean_skills(v)

    @field_validator("success_criteria")
    @classmethod
    def _criteria(cls, v: list[str]) -> list[str]:
        cleaned = [c.strip() for c in v]
        if any(not c for c in cleaned):
            raise ValueError("success criteria must be non-empty strings")
        return list(dict.fromkeys(cleaned))

    @field_validator("deadline")
    @classmethod
    def _utc(cls, v: datetime | None) -> datetime | None:
        return as_utc(v)

    @field_validator("shared_resources")
    @classmethod
    def _resources(cls, v: dict[str, float]) -> dict[str, float]:
        bad = {k: x for k, x in v.items() if x < 1}
        if bad:
            raise ValueError(f"shared resource units must be >= 1, got {bad!r}")
        return v

    @model_validator(mode="before")
    @classmethod
    def _objective(cls, data: Any) -> Any:
        # The objective defaults to the description, so prompts and records always have one.
        if isinstance(data, Mapping) and not str(data.get("objective") or "").strip():
            data = {**data, "objective": data.get("description", "")}
        return data


class ConsensusSettings(_Edge):
    """How the team decides on the synthesis."""

    rule: Rule = "majority"
    quorum: float = Field(default=0.5, ge=0, le=1, description="Fraction of voters that must vote.")
    supermajority: float = Field(default=2 / 3, gt=0.5, le=1)


class CollaborationRequest(_Edge):
    """One entry of the graph input ``start_collaborations``."""

    goal: CollaborationGoal
    agent_ids: list[str] = Field(min_length=1, description="The team: registered agent ids.")
    consensus: ConsensusSettings = Field(default_factory=ConsensusSettings)
    when_full: Literal["queue", "reject"] | None = Field(
        default=None,
        description="At max_concurrent_collaborations: queue or reject (default from config, else queue).",
    )
    bid_notes: bool = Field(
        default=False,
        description="With a model, each proposal carries an LLM-written note (one call per bid).",
    )
    bid_window_seconds: float = Field(
        default=30.0, gt=0, le=3600, description="Contract Net bid deadline."
    )

    @field_validator("agent_ids")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        dupes = sorted({a for a in v if v.count(a) > 1})
        if dupes:
            raise ValueError(f"agent ids must be unique; repeated: {dupes}")
        return v


def parse_request(
    data: object, *, index: int = 0, registry: Mapping[str, Mapping[str, Any]] | None = None
) -> CollaborationRequest:
    """Validate one collaboration request, optionally against the agent registry.

    Args:
        data: a :class:`CollaborationRequest` or its dict form.
        index: position in ``start_collaborations`` (named in the error).
        registry: agent id -> record; when given, every team member must be registered.

    Returns:
        The validated request.

    Raises:
        InvalidInputError: a field is wrong or a team member is unknown; the message names the
            field, the value and the fix.
    """
    request = parse_model(CollaborationRequest, data, kind=f"start_collaborations[{index}]")
    if registry is not None:
        unknown = [a for a in request.agent_ids if a not in registry]
        if unknown:
            known = sorted(registry)[:20]
            raise InvalidInputError(
                f"Invalid start_collaborations[{index}] {request.goal.id!r}: `agent_ids` = {unknown!r} "
                f"are not registered agents (registered: {known!r}). Fix: register them first or "
                f"drop them from the team.",
                errors=[{"field": "agent_ids", "value": unknown, "message": "unknown agent ids"}],
            )
    return request


class TeamRequirements(_Edge):
    """What :func:`~stellar_graph.collaboration.team.form_team` must cover."""

    required_skills: list[str] = Field(min_length=1, description="Every skill must be covered.")
    description: str = Field(default="cross-functional team", min_length=1)
    candidates: list[str] | None = Field(default=None, description="Restrict to these agent ids.")
    max_size: int | None = Field(default=None, ge=1, description="At most this many agents.")

    @model_validator(mode="before")
    @classmethod
    def _skills_alias(cls, data: Any) -> Any:
        # The seed's requirements may say `skills`; accept it as `required_skills`.
        if isinstance(data, Mapping) and "skills" in data and "required_skills" not in data:
            data = {("required_skills" if k == "skills" else k): v for k, v in data.items()}
        return data

    @field_validator("required_skills")
    @classmethod
    def _skills(cls, v: list[str]) -> list[str]:
        return _clean_skills(v)


# -- LLM structured output ------------------------------------------------------------------


class PlanStep(BaseModel):
    """One subtask of a plan, as the planner LLM writes it."""

    id: str = Field(description="Short unique id, e.g. 's1'.")
    description: str = Field(description="What this subtask must produce.")
    role: str = Field(description="The role that does it, e.g. 'engineer', 'reviewer'.")
    required_skills: list[str] = Field(description="Skills from the team's skill list.")
    depends_on: list[str] = Field(description="Ids of subtasks whose results this one needs.")
    success_criteria: list[str] = Field(
        description="Which of the goal's success criteria it delivers."
    )
    shared_resources: list[str] = Field(
        description="Shared resources it holds while running (may be empty)."
    )
    estimated_minutes: float = Field(description="Estimated duration in minutes.")


class GoalPlan(BaseModel):
    """The planner's answer: the subtasks and why."""

    subtasks: list[PlanStep] = Field(description="The subtasks, in a sensible order.")
    rationale: str = Field(description="One or two sentences on the decomposition.")


class CollaborationVote(BaseModel):
    """One agent's vote on the team's synthesis."""

    choice: Literal["approve", "reject", "abstain"] = Field(description="Your vote.")
    reason: str = Field(description="Why, with reference to the success criteria.")
    confidence: float = Field(description="Confidence in your judgement, in [0, 1].")


class MediatorRuling(BaseModel):
    """The mediator's resolution of one conflict."""

    decision: str = Field(description="Exactly one of the allowed decisions listed in the prompt.")
    rationale: str = Field(description="Why this resolution is fair and best for the goal.")
