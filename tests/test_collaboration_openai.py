"""A collaboration end to end through the real ChatOpenAI over respx-mocked HTTP.

Plan (LLM) -> Contract Net -> two subtasks in parallel, then the dependent one -> a split vote ->
the mediator settles it. Then every LLM step fails in turn (invalid JSON, wrong schema, HTTP 500,
timeout) and the collaboration still ends with a decision or an explicit no-decision, the record
naming the fallback that ran.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import respx
from langgraph.checkpoint.memory import InMemorySaver

from stellar_graph import create_orchestra
from stellar_graph.testing import make_test_chat_openai
from tests.test_collaboration_fakes import AGENTS, FAILURES, GOAL, TEAM, Brain, respx_handler

BASE = "http://llm.mock/v1"
RUN = {"configurable": {"thread_id": "collab-openai"}, "recursion_limit": 200}


async def _run(brain: Brain, clock: Any) -> tuple[dict[str, Any], list[Any]]:
    app = create_orchestra(model=make_test_chat_openai(BASE), clock=clock).compile(
        checkpointer=InMemorySaver()
    )
    with respx.mock(base_url=BASE) as mock:
        mock.post("/chat/completions").mock(side_effect=respx_handler(brain))
        out = await app.ainvoke(
            {
                "register_agents": AGENTS,
                "start_collaborations": [{"goal": GOAL, "agent_ids": TEAM}],
            },
            RUN,
        )
    history = [s async for s in app.aget_state_history(RUN)][::-1]  # oldest first
    return out["collaborations"][GOAL["id"]], history


def _before(history: list[Any], node: str) -> list[dict[str, Any]]:
    """The collaboration record each time the graph was about to run ``node``."""
    return [
        s.values["collaborations"][GOAL["id"]]
        for s in history
        if node in s.next and GOAL["id"] in (s.values.get("collaborations") or {})
    ]


def _calls(brain: Brain, kind: str) -> list[dict[str, Any]]:
    return [c for c in brain.calls if c["kind"] == kind]


async def test_plan_negotiate_execute_vote_and_mediate_a_split(fixed_clock: Any) -> None:
    brain = Brain(
        votes={"atlas-001": "approve", "edison-001": "reject", "lilith-001": "abstain"},
        mediator="approve",
    )
    record, history = await _run(brain, fixed_clock)

    # 1. Planning: one structured call whose prompt carries the goal, the criteria and the team's skills.
    (plan_call,) = _calls(brain, "plan")
    body = plan_call["body"]
    assert (
        body["model"] == "gpt-4o-mini"
        and body["response_format"]["json_schema"]["name"] == "GoalPlan"
    )
    assert (
        GOAL["description"] in plan_call["text"]
        and "- implementation_feasibility" in plan_call["text"]
    )
    assert (
        "lilith-001 (LilithAgent): critical_review, ethics, red_teaming, risk_analysis, security"
        in plan_call["text"]
    )
    planned = _before(history, "negotiation")[0]
    assert planned["status"] == "negotiating"
    assert (planned["plan"]["source"], planned["plan"]["fallback"]) == ("llm", None)
    assert [s["id"] for s in planned["plan"]["subtasks"]] == ["s1", "s2", "s3"]

    # 2. Negotiation: deterministic bids (no LLM), refusals with reasons, one award per subtask.
    negotiated = _before(history, "collaboration_dispatch")[0]
    (round1,) = negotiated["rounds"]
    bids = {(b["subtask_id"], b["agent_id"]): b for b in round1["bids"]}
    assert bids[("s1", "edison-001")]["kind"] == "refuse"
    assert bids[("s1", "edison-001")]["reason"] == "missing skill(s): ethics, decision_making"
    assert (
        bids[("s1", "atlas-001")]["score"] > bids[("s1", "lilith-001")]["score"]
    )  # 2/2 skills vs 1/2
    assert {a["subtask_id"]: a["agent_id"] for a in round1["awards"]} == {
        "s1": "atlas-001",
        "s2": "edison-001",
        "s3": "lilith-001",
    }
    assert all(b["status"] == "accepted" for b in round1["bids"]) and round1["late"] == 0

    # 3. Execution: s1 and s2 in one wave (parallel Sends), s3 after both, with their results in its inbox.
    subtasks = record["subtasks"]
    assert (subtasks["s1"]["wave"], subtasks["s2"]["wave"], subtasks["s3"]["wave"]) == (1, 1, 2)
    dispatches = _before(history, "collaboration_work")
    assert [
        sorted(s for s, st in d["subtasks"].items() if st["status"] == "running")
        for d in dispatches
    ] == [["s1", "s2"], ["s3"]]
    agent_calls = _calls(brain, "agent")
    assert [c["subtask"] for c in agent_calls][2] == "s3" and {
        c["subtask"] for c in agent_calls[:2]
    } == {"s1", "s2"}
    s3_text = agent_calls[2]["text"]
    assert "You are Lilith (instance lilith-001)" in s3_text
    assert (
        "from atlas-001" in s3_text
        and "atlas-001 result for s1" in s3_text
        and "edison-001 result for s2" in s3_text
    )

    # 4. Consensus: three structured votes on the synthesis; 1 approve, 1 reject, 1 abstain is a tie.
    votes = _calls(brain, "vote")
    assert sorted(c["agent"] for c in votes) == TEAM
    assert all(
        "atlas-001 result for s1" in c["text"] and "- stakeholder_approval: met" in c["text"]
        for c in votes
    )
    assert votes[0]["body"]["response_format"]["json_schema"]["name"] == "CollaborationVote"
    deciding = _before(history, "conflict_resolution")[-1]
    assert deciding["status"] == "deciding"
    assert (
        deciding["votes"]["decision"]["reason"] == "tie"
        and deciding["votes"]["decision"]["status"] == "no_decision"
    )
    assert {b["voter"]: (b["choice"], b["source"]) for b in deciding["votes"]["ballots"]} == {
        "atlas-001": ("approve", "llm"),
        "edison-001": ("reject", "llm"),
        "lilith-001": ("abstain", "llm"),
    }
    assert deciding["conflicts"]["split_vote"]["status"] == "open"

    # 5. Mediation: the LLM mediator settles the split, seeing every vote and its reason.
    (mediation,) = _calls(brain, "mediate")
    assert (
        "edison-001 judges: reject" in mediation["text"]
        and "approve, reject, no_decision" in mediation["text"]
    )
    resolution = record["conflicts"]["split_vote"]["resolution"]
    assert (resolution["decision"], resolution["decided_by"], resolution["fallback"]) == (
        "approve",
        "mediator:llm",
        None,
    )
    assert record["status"] == "succeeded"
    assert record["outcome"] == {
        "status": "succeeded",
        "decision": "approve",
        "decided_by": "mediator:llm",
        "reason": "the draft meets the criteria once reviewed",
    }
    assert record["fallbacks"] == []
    # plan + 3 votes + mediator = 5 collaboration calls at 100 + 20 tokens each; 3 agent calls.
    assert record["usage"] == {
        "llm_calls": 5,
        "input_tokens": 500,
        "output_tokens": 100,
        "agent_calls": 3,
        "agent_input_tokens": 300,
        "agent_output_tokens": 60,
    }
    assert len(brain.calls) == 8  # plan, 3 agents, 3 votes, 1 mediation


def _expect(fallback: str) -> str:
    return (
        "timeout"
        if fallback == "timeout"
        else "provider_error"
        if fallback == "http_500"
        else fallback
    )


@pytest.mark.parametrize("failure", FAILURES)
async def test_planning_failure_falls_back_to_the_deterministic_plan(
    failure: str, fixed_clock: Any
) -> None:
    record, _ = await _run(Brain(plan=failure), fixed_clock)
    plan = record["plan"]
    assert (plan["source"], plan["fallback"]) == ("deterministic", _expect(failure))
    assert plan["error"]
    assert [s["success_criteria"] for s in plan["subtasks"]] == [
        ["stakeholder_approval"],
        ["implementation_feasibility"],
        [],
    ]
    assert record["fallbacks"][0]["step"] == "planning" and record["fallbacks"][0][
        "fallback"
    ] == _expect(failure)
    assert record["status"] == "succeeded" and record["outcome"]["decided_by"] == "vote:majority"


@pytest.mark.parametrize("failure", FAILURES)
async def test_voting_failure_falls_back_to_deterministic_votes(
    failure: str, fixed_clock: Any
) -> None:
    record, _ = await _run(Brain(votes=failure), fixed_clock)
    ballots = record["votes"]["ballots"]
    assert {(b["source"], b["fallback"]) for b in ballots} == {("deterministic", _expect(failure))}
    assert all(
        b["choice"] == "approve" and "2/2 success criteria met" in b["reason"] for b in ballots
    )
    assert sorted(f["step"] for f in record["fallbacks"]) == [f"vote:{a}" for a in TEAM]
    assert record["status"] == "succeeded" and record["outcome"]["decided_by"] == "vote:majority"


@pytest.mark.parametrize("failure", FAILURES)
async def test_mediation_failure_falls_back_to_the_rule(failure: str, fixed_clock: Any) -> None:
    split = {"atlas-001": "approve", "edison-001": "reject", "lilith-001": "abstain"}
    record, _ = await _run(Brain(votes=split, mediator=failure), fixed_clock)
    resolution = record["conflicts"]["split_vote"]["resolution"]
    assert (resolution["source"], resolution["fallback"]) == ("deterministic", _expect(failure))
    # atlas and edison are equally competent for the plan's skills: the weighted re-tally ties too.
    assert (
        resolution["decided_by"] == "rule:competence_weighted"
        and resolution["decision"] == "no_decision"
    )
    assert record["status"] == "no_decision"
    assert (
        record["outcome"]["decision"] is None
        and record["outcome"]["decided_by"] == "rule:competence_weighted"
    )
    assert record["fallbacks"] == [
        {"step": "mediation:split_vote", "fallback": _expect(failure), "error": resolution["error"]}
    ]


async def test_the_mediator_must_pick_an_allowed_decision(fixed_clock: Any) -> None:
    split = {"atlas-001": "approve", "edison-001": "reject", "lilith-001": "abstain"}
    record, _ = await _run(Brain(votes=split, mediator="launch it anyway"), fixed_clock)
    resolution = record["conflicts"]["split_vote"]["resolution"]
    assert (
        resolution["fallback"] == "invalid_content" and "'launch it anyway'" in resolution["error"]
    )
    assert record["status"] == "no_decision"


def test_llm_schemas_are_strict_json_schemas() -> None:
    from langchain_core.utils.function_calling import convert_to_openai_tool

    from stellar_graph.collaboration.models import CollaborationVote, GoalPlan, MediatorRuling

    for schema in (GoalPlan, CollaborationVote, MediatorRuling):
        params = convert_to_openai_tool(schema, strict=True)["function"]["parameters"]
        text = json.dumps(params)
        assert '"additionalProperties": false' in text
        assert set(params["required"]) == set(params["properties"])
