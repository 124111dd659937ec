"""The deterministic scorer as LangChain tools."""

from __future__ import annotations

import json

from stellar_graph.agents.spec import REFERENCE_TEAM, AgentTypeRegistry
from stellar_graph.scoring_tools import create_scoring_tools
from stellar_graph.submission import accept_agents
from stellar_graph.tokens import count_tokens
from tests.conftest import FIXED_NOW

TEAM = accept_agents(
    {},
    [
        {"agent_id": "atlas-001", "agent_type": "atlas", "capabilities": ["ethics"]},
        {"agent_id": "edison-001", "agent_type": "edison", "capabilities": ["engineering"]},
    ],
    AgentTypeRegistry(REFERENCE_TEAM),
    count_tokens,
)


def test_score_and_explain_tools() -> None:
    score, explain = create_scoring_tools(lambda: TEAM, clock=lambda: FIXED_NOW)
    assert score.name == "score_agents_for_task" and "required_skills" in score.args
    ranked = json.loads(score.invoke({"required_skills": ["ethics"]}))
    assert [r["agent_id"] for r in ranked["ranking"]] == ["atlas-001"]
    assert ranked["infeasible"] == {"edison-001": "missing skill(s): ethics"}
    text = explain.invoke({"required_skills": ["ethics"], "agent_id": "atlas-001"})
    assert "skills" in text and "workload" in text
    assert "cannot take this task: missing skill(s): ethics" in explain.invoke({"required_skills": ["ethics"], "agent_id": "edison-001"})
    assert explain.invoke({"required_skills": ["ethics"], "agent_id": "ghost"}).startswith("error: Unknown agent id 'ghost'")
