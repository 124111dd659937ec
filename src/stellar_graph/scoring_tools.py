"""The deterministic scorer as LangChain tools, for LLM agents and users' own graphs.

Example:
    >>> tools = create_scoring_tools(lambda: orchestra.registered_agents())   # doctest: +SKIP
    >>> tools[0].invoke({"required_skills": ["ethics"]})                     # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from langchain_core.tools import BaseTool, StructuredTool
from pydantic import BaseModel, Field

from stellar_graph.config import DEFAULT_WEIGHTS
from stellar_graph.errors import StellarGraphError, UnknownAgentError
from stellar_graph.models import Task, parse_model
from stellar_graph.scoring import AgentPool, score_task

__all__ = ["create_scoring_tools"]

AgentsProvider = Callable[[], Mapping[str, Mapping[str, Any]]]


class _TaskQuery(BaseModel):
    required_skills: list[str] = Field(description="Skills the task needs.")
    estimated_duration_minutes: float = Field(default=60, description="Estimated duration.")
    deadline: str | None = Field(default=None, description="ISO 8601 deadline, if any.")
    resources: dict[str, float] = Field(default_factory=dict, description="Resource name -> amount.")
    priority: str = Field(default="medium", description="low, medium, high or critical.")


class _ScoreQuery(_TaskQuery):
    top_k: int = Field(default=5, ge=1, le=50, description="How many agents to return.")


class _ExplainQuery(_TaskQuery):
    agent_id: str = Field(description="The agent to explain.")


def create_scoring_tools(
    agents: AgentsProvider,
    *,
    weights: Mapping[str, float] = DEFAULT_WEIGHTS,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> list[BaseTool]:
    """Build ``score_agents_for_task`` and ``explain_agent_for_task``.

    Args:
        agents: returns the current registry (agent id -> record, as in the orchestra's state).
        weights: factor weights.
        clock: time source for the deadline factor.

    Returns:
        Two tools; their outputs are JSON strings. Errors come back as text the LLM can read.
    """

    def _scores(query: _TaskQuery) -> tuple[AgentPool, Any]:
        task = parse_model(Task, {"id": "query", "description": "scoring query", **query.model_dump(include=set(_TaskQuery.model_fields))}, kind="task")
        pool = AgentPool.from_records(list(agents().values()))
        return pool, score_task(task.model_dump(mode="json"), pool, weights=weights, now=clock())

    def score_agents_for_task(**kwargs: Any) -> str:
        query = _ScoreQuery(**kwargs)
        try:
            pool, scores = _scores(query)
        except StellarGraphError as exc:
            return f"error: {exc}"
        ranking = [
            {"agent_id": pool.ids[i], "score": round(float(scores.total[i]), 4), "factors": scores.breakdown(i)}
            for i in scores.ranked(query.top_k)
        ]
        return json.dumps({"ranking": ranking, "infeasible": scores.reasons()})

    def explain_agent_for_task(**kwargs: Any) -> str:
        query = _ExplainQuery(**kwargs)
        try:
            pool, scores = _scores(query)
            i = pool.index(query.agent_id)
        except (StellarGraphError, UnknownAgentError) as exc:
            return f"error: {exc}"
        if not scores.feasible[i]:
            return f"{query.agent_id} cannot take this task: {scores.reasons()[query.agent_id]}"
        return str(scores.explain(i, weights))

    return [
        StructuredTool.from_function(
            score_agents_for_task,
            name="score_agents_for_task",
            description="Rank the registered agents for a task by the deterministic multi-factor score.",
            args_schema=_ScoreQuery,
        ),
        StructuredTool.from_function(
            explain_agent_for_task,
            name="explain_agent_for_task",
            description="Explain, factor by factor, how well one agent fits a task, or why it cannot take it.",
            args_schema=_ExplainQuery,
        ),
    ]
