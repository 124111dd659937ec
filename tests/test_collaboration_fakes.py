"""Shared fakes for the collaboration tests: a scripted "brain" behind respx or ScriptedChatModel.

One :class:`Brain` answers every kind of collaboration prompt (planner, agent, voter, mediator,
bid note) from its settings, and can fail a kind on purpose (invalid JSON, wrong schema, HTTP 500,
timeout). It is reached either over HTTP through respx (the real ``ChatOpenAI``) or directly as
the step of a :class:`~stellar_graph.testing.ScriptedChatModel`.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field
from typing import Any

import httpx
from langchain_core.exceptions import ModelAPIError
from langchain_core.messages import AIMessage, BaseMessage

from stellar_graph.agents.spec import ATLAS, EDISON, LILITH
from stellar_graph.testing import (
    ScriptedChatModel,
    chat_completion,
    openai_error,
    structured,
    structured_completion,
)

FAILURES = ("invalid_json", "wrong_schema", "http_500", "timeout")
TEAM = ["atlas-001", "edison-001", "lilith-001"]
AGENTS = [
    ATLAS.default_profile("atlas-001"),
    EDISON.default_profile("edison-001"),
    LILITH.default_profile("lilith-001"),
]
GOAL = {
    "id": "ethics-innovation-synthesis",
    "description": "Synthesize ethical guidelines for AI innovation",
    "objective": "Create comprehensive ethical framework",
    "success_criteria": ["stakeholder_approval", "implementation_feasibility"],
    "priority": "critical",
}
PLAN = {
    "rationale": "Draft and assess in parallel, then red-team both.",
    "subtasks": [
        {
            "id": "s1",
            "description": "Draft the ethical guidelines",
            "role": "ethicist",
            "required_skills": ["ethics", "decision_making"],
            "depends_on": [],
            "success_criteria": ["stakeholder_approval"],
            "shared_resources": [],
            "estimated_minutes": 60,
        },
        {
            "id": "s2",
            "description": "Assess implementation feasibility",
            "role": "engineer",
            "required_skills": ["engineering", "system_design"],
            "depends_on": [],
            "success_criteria": ["implementation_feasibility"],
            "shared_resources": [],
            "estimated_minutes": 45,
        },
        {
            "id": "s3",
            "description": "Red-team the draft and the assessment",
            "role": "reviewer",
            "required_skills": ["red_teaming", "risk_analysis"],
            "depends_on": ["s1", "s2"],
            "success_criteria": [],
            "shared_resources": [],
            "estimated_minutes": 30,
        },
    ],
}


def kind_of(text: str) -> str:
    """Which collaboration step a prompt belongs to."""
    if "You are the planner" in text:
        return "plan"
    if "Vote on whether" in text:
        return "vote"
    if "You are the mediator" in text:
        return "mediate"
    if "bidding for a subtask" in text:
        return "note"
    return "agent"


@dataclass
class Brain:
    """Answers collaboration prompts; a setting equal to a failure name fails that step."""

    plan: dict[str, Any] | str = field(default_factory=lambda: PLAN)
    votes: dict[str, str] | str = field(default_factory=lambda: dict.fromkeys(TEAM, "approve"))
    mediator: str | dict[str, str] = "approve"
    """The decision, or conflict kind -> decision."""
    answers: dict[str, dict[str, Any] | str] = field(default_factory=dict)
    """Subtask id (or ``"<subtask>@<agent>"``) -> fields overriding the agent's answer, or a failure."""
    note_delays: dict[str, float] = field(default_factory=dict)
    """Agent id -> seconds its bid note takes (ScriptedChatModel only)."""
    calls: list[dict[str, Any]] = field(default_factory=list)

    def answer(self, text: str) -> tuple[str, Any]:
        """``(kind, answer)``: answer is a dict (structured), a str (text) or a failure name."""
        kind = kind_of(text)
        who = _first(r"instance ([\w.\-]+)\)", text) or _first(r"You are ([\w.\-]+) \(", text)
        sub = _first(r"Task [\w.\-]+?\.(\w+) \(", text)
        self.calls.append({"kind": kind, "agent": who, "subtask": sub, "text": text})
        if kind == "plan":
            return kind, self.plan
        if kind == "vote":
            choice = (
                self.votes if isinstance(self.votes, str) else self.votes.get(who or "", "approve")
            )
            if choice in FAILURES:
                return kind, choice
            return kind, {"choice": choice, "reason": f"{who} judges: {choice}", "confidence": 0.8}
        if kind == "mediate":
            conflict = _first(r"Conflict \((\w+)\):", text) or ""
            decision = (
                self.mediator if isinstance(self.mediator, str) else self.mediator.get(conflict, "")
            )
            if decision in FAILURES:
                return kind, decision
            return kind, {
                "decision": decision,
                "rationale": "the draft meets the criteria once reviewed",
            }
        if kind == "note":
            return kind, f"{who} will do it carefully."
        override = self.answers.get(f"{sub}@{who}", self.answers.get(sub or "", {}))
        if isinstance(override, str):
            return kind, override
        criteria = re.findall(
            r"^- (.+)$", text.split("Success criteria:")[-1].split("Messages for you:")[0], re.M
        )
        criteria = [c for c in criteria if c != "(none given)"]
        return kind, {
            "result": f"{who} result for {sub}",
            "criteria_met": criteria,
            "confidence": 0.9,
            **override,
        }


def _first(pattern: str, text: str) -> str | None:
    match = re.search(pattern, text)
    return match.group(1) if match else None


_SCHEMA = {
    "plan": "GoalPlan",
    "vote": "CollaborationVote",
    "mediate": "MediatorRuling",
    "agent": "AgentAnswer",
}


def respx_handler(brain: Brain):
    """A respx side effect answering ``/chat/completions`` like OpenAI would."""

    def handle(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        text = "\n".join(str(m.get("content") or "") for m in body["messages"])
        kind, answer = brain.answer(text)
        brain.calls[-1]["body"] = body
        if answer == "http_500":
            return openai_error(500, "upstream exploded")
        if answer == "timeout":
            raise httpx.ReadTimeout("the model is too slow", request=request)
        if answer == "invalid_json":
            return httpx.Response(200, json=chat_completion("this is {not json"))
        if answer == "wrong_schema":
            return httpx.Response(200, json=structured_completion({"unexpected": 1}))
        if isinstance(answer, str):
            return httpx.Response(200, json=chat_completion(answer))
        return httpx.Response(
            200, json=structured_completion(answer, prompt_tokens=100, completion_tokens=20)
        )

    return handle


def scripted_model(brain: Brain, steps: int = 200) -> ScriptedChatModel:
    """A ScriptedChatModel whose every step asks ``brain`` (``timeout`` hangs for 30 s)."""

    async def step(messages: list[BaseMessage]) -> AIMessage:
        text = "\n".join(str(m.content) for m in messages)
        kind, answer = brain.answer(text)
        if kind == "note":
            await asyncio.sleep(brain.note_delays.get(brain.calls[-1]["agent"] or "", 0.0))
        if answer == "timeout":
            await asyncio.sleep(30)
        if answer == "http_500":
            raise ModelAPIError("upstream exploded")
        if answer == "invalid_json":
            return AIMessage(content="this is {not json")
        if answer == "wrong_schema":
            return structured({"unexpected": 1}, name=_SCHEMA[kind])
        if isinstance(answer, str):
            return AIMessage(content=answer)
        return structured(answer, name=_SCHEMA[kind])

    return ScriptedChatModel(responses=[step] * steps)


def test_brain_routes_prompts_by_kind() -> None:
    brain = Brain()
    assert brain.answer("You are the planner of a team")[1] == PLAN
    kind, vote = brain.answer("You are lilith-001 (LilithAgent) ... Vote on whether it meets")
    assert (kind, vote["choice"]) == ("vote", "approve")
    kind, answer = brain.answer(
        "You are Atlas (instance atlas-001)\nTask g.s1 (priority high):\nSuccess criteria:\n- a\n- b\n"
    )
    assert (kind, answer["criteria_met"], brain.calls[-1]["subtask"]) == ("agent", ["a", "b"], "s1")
