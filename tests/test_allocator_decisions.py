"""The allocator picks the agent a person would pick, explains why, and refuses with a reason.

Each test changes one factor and checks that the decision follows it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from stellar_graph.agents.spec import REFERENCE_TEAM, AgentTypeRegistry
from stellar_graph.board import plan_allocations
from stellar_graph.config import DEFAULT_WEIGHTS
from stellar_graph.submission import accept_agents, accept_tasks
from stellar_graph.tokens import count_tokens
from tests.conftest import FIXED_NOW

REGISTRY = AgentTypeRegistry(REFERENCE_TEAM)


def agents(*profiles: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return accept_agents({}, list(profiles), REGISTRY, count_tokens)


def board(*tasks: dict[str, Any], existing: dict[str, dict[str, Any]] | None = None) -> dict[str, dict[str, Any]]:
    new = accept_tasks(existing or {}, [{"description": "work", **t} for t in tasks], count_tokens, now=FIXED_NOW)
    return {**(existing or {}), **new}


def decide(tasks: dict[str, dict[str, Any]], team: dict[str, dict[str, Any]], **kw: Any):
    return plan_allocations(tasks, team, weights=DEFAULT_WEIGHTS, now=FIXED_NOW, **kw)


def winner(plan, task_id: str) -> str | None:
    return plan.task_patches[task_id].get("agent_id")


def test_skill_match_comes_first() -> None:
    team = agents(
        {"agent_id": "atlas-001", "agent_type": "atlas", "capabilities": ["ethics"]},
        {"agent_id": "edison-001", "agent_type": "edison", "capabilities": ["engineering"], "speed": 3.0},
    )
    plan = decide(board({"id": "t", "required_skills": ["ethics"]}), team)
    assert winner(plan, "t") == "atlas-001"
    assert plan.allocations["alloc-t"]["breakdown"]["skills"] == 1.0


def test_partial_skill_beats_none_and_full_beats_partial() -> None:
    team = agents(
        {"agent_id": "a-1", "agent_type": "atlas", "capabilities": ["ethics"]},
        {"agent_id": "a-2", "agent_type": "atlas", "capabilities": ["ethics", "philosophy"]},
    )
    plan = decide(board({"id": "t", "required_skills": ["ethics", "philosophy"]}), team)
    assert winner(plan, "t") == "a-2"
    assert plan.allocations["alloc-t"]["alternatives"][0]["agent_id"] == "a-1"


def test_equal_skills_lower_load_wins() -> None:
    team = agents(
        {"agent_id": "a-1", "agent_type": "atlas", "capabilities": ["ethics"], "capacity": 2},
        {"agent_id": "a-2", "agent_type": "atlas", "capabilities": ["ethics"], "capacity": 2},
    )
    busy = board({"id": "old", "required_skills": ["ethics"]})
    busy["old"].update(status="running", agent_id="a-1")
    plan = decide(board({"id": "t", "required_skills": ["ethics"]}, existing=busy), team)
    assert winner(plan, "t") == "a-2"
    assert plan.allocations["alloc-t"]["breakdown"]["workload"] == 1.0


def test_tight_deadline_picks_the_faster_agent() -> None:
    team = agents(
        {"agent_id": "slow", "agent_type": "pythagoras", "capabilities": ["statistics"], "speed": 0.5},
        {"agent_id": "fast", "agent_type": "pythagoras", "capabilities": ["statistics"], "speed": 2.0},
    )
    relaxed = decide(board({"id": "t", "required_skills": ["statistics"], "estimated_duration_minutes": 60}), team)
    due = (FIXED_NOW + timedelta(minutes=90)).isoformat()
    tight = decide(board({"id": "t", "required_skills": ["statistics"], "estimated_duration_minutes": 60, "deadline": due}), team)
    assert winner(relaxed, "t") == "slow"  # no deadline: a tie, broken by registration order
    assert winner(tight, "t") == "fast"  # the deadline changes the decision
    assert tight.allocations["alloc-t"]["breakdown"]["deadline"] == pytest.approx(1.0)
    # The slow agent would need 120 min for a 90 min deadline: likely late, deadline factor 0.
    slow_only = decide(board({"id": "t", "required_skills": ["statistics"], "estimated_duration_minutes": 60, "deadline": due}),
                       {"slow": team["slow"]})
    assert slow_only.allocations["alloc-t"]["breakdown"]["deadline"] == 0.0


def test_resource_shortfall_excludes_even_the_better_skilled() -> None:
    team = agents(
        {"agent_id": "expert", "agent_type": "edison", "capabilities": {"engineering": 1.0}},
        {"agent_id": "gpu-owner", "agent_type": "edison", "capabilities": {"engineering": 0.5}, "resources": {"gpu": 2}},
    )
    plan = decide(board({"id": "t", "required_skills": ["engineering"], "resources": {"gpu": 1}}), team)
    assert winner(plan, "t") == "gpu-owner"
    without = decide(board({"id": "t", "required_skills": ["engineering"]}), team)
    assert winner(without, "t") == "expert"


def test_token_budget_excludes_the_agent_with_the_longer_prompt() -> None:
    team = agents(
        {"agent_id": "atlas-001", "agent_type": "atlas", "capabilities": ["ethics"]},
        {"agent_id": "lilith-001", "agent_type": "lilith", "capabilities": ["ethics"]},
    )
    tasks = board({"id": "t", "required_skills": ["ethics"]})
    need = {a: team[a]["prompt_tokens"] + tasks["t"]["prompt_tokens"] for a in team}
    short, long_ = sorted(need, key=need.get)
    assert need[short] < need[long_]
    budget = need[short]  # enough for the shorter prompt only
    plan = decide(board({"id": "t", "required_skills": ["ethics"], "token_budget": budget}), team)
    assert winner(plan, "t") == short
    assert plan.allocations["alloc-t"]["estimated_prompt_tokens"] == need[short]
    none = decide(board({"id": "t", "required_skills": ["ethics"], "token_budget": 10}), team)
    assert none.task_patches["t"]["status"] == "refused"
    assert "token budget 10" in none.allocations["alloc-t"]["reasons"][short]


def test_preferred_agent_tips_a_tie() -> None:
    team = agents(
        {"agent_id": "a-1", "agent_type": "atlas", "capabilities": ["ethics"]},
        {"agent_id": "a-2", "agent_type": "atlas", "capabilities": ["ethics"]},
    )
    assert winner(decide(board({"id": "t", "required_skills": ["ethics"]}), team), "t") == "a-1"
    plan = decide(board({"id": "t", "required_skills": ["ethics"], "preferred_agents": ["a-2"]}), team)
    assert winner(plan, "t") == "a-2"
    assert plan.allocations["alloc-t"]["breakdown"]["collaboration"] == 1.0


def test_no_feasible_agent_is_refused_with_each_reason() -> None:
    team = agents(
        {"agent_id": "atlas-001", "agent_type": "atlas", "capabilities": ["ethics"]},
        {"agent_id": "edison-001", "agent_type": "edison", "capabilities": ["engineering"]},
    )
    plan = decide(board({"id": "t", "required_skills": ["marine_biology"]}), team)
    allocation = plan.allocations["alloc-t"]
    assert allocation["status"] == "refused" and allocation["agent_id"] is None
    assert allocation["reasons"] == {
        "atlas-001": "missing skill(s): marine_biology",
        "edison-001": "missing skill(s): marine_biology",
    }
    assert plan.task_patches["t"]["error"].startswith("no feasible agent: atlas-001: missing skill(s)")


def test_beyond_free_capacity_tasks_queue_on_a_slot_and_priority_goes_first() -> None:
    team = agents({"agent_id": "a-1", "agent_type": "atlas", "capabilities": ["ethics"], "capacity": 1})
    tasks = board(
        {"id": "low", "required_skills": ["ethics"], "priority": "low"},
        {"id": "urgent", "required_skills": ["ethics"], "priority": "critical"},
    )
    plan = decide(tasks, team)
    assert plan.task_patches["urgent"]["status"] == "allocated"
    assert plan.task_patches["low"]["status"] == "queued"
    queued = plan.allocations["alloc-low"]
    assert (queued["agent_id"], queued["queue_position"], queued["predicted_start_minutes"]) == ("a-1", 1, 60.0)
    assert "queued on a-1 slot 0 behind 1 task(s); predicted start in 60 min" in queued["explanation"]


def test_queued_work_goes_where_it_finishes_first_not_behind_a_long_task() -> None:
    team = agents(
        {"agent_id": "a-1", "agent_type": "atlas", "capabilities": ["ethics", "engineering"], "capacity": 1},
        {"agent_id": "e-1", "agent_type": "edison", "capabilities": ["engineering"], "capacity": 1},
    )
    tasks = board(
        {"id": "long", "required_skills": ["ethics"], "estimated_duration_minutes": 600},
        *({"id": f"q{i}", "required_skills": ["engineering"], "estimated_duration_minutes": 10} for i in range(5)),
    )
    plan = decide(tasks, team)
    assert plan.task_patches["long"]["agent_id"] == "a-1"
    placed = {t: plan.task_patches[t]["agent_id"] for t in tasks if t != "long"}
    assert list(placed.values()) == ["e-1"] * 5  # nothing queued behind the 600-minute task
    assert sorted(plan.task_patches[t]["queue_position"] for t in placed) == [0, 1, 2, 3, 4]


def test_explanation_is_factor_by_factor() -> None:
    team = agents({"agent_id": "a-1", "agent_type": "atlas", "capabilities": ["ethics"], "capacity": 4})
    plan = decide(board({"id": "t", "required_skills": ["ethics", "philosophy"]}), team)
    allocation = plan.allocations["alloc-t"]
    assert set(allocation["breakdown"]) == set(DEFAULT_WEIGHTS)
    for factor in DEFAULT_WEIGHTS:
        assert factor in allocation["explanation"]
    assert allocation["score"] == pytest.approx(sum(DEFAULT_WEIGHTS[f] * v for f, v in allocation["breakdown"].items()), abs=1e-5)


def test_unhealthy_agent_is_excluded() -> None:
    team = agents(
        {"agent_id": "a-1", "agent_type": "atlas", "capabilities": ["ethics"]},
        {"agent_id": "a-2", "agent_type": "atlas", "capabilities": ["ethics"]},
    )
    team["a-1"]["healthy"] = False
    plan = decide(board({"id": "t", "required_skills": ["ethics"]}), team)
    assert winner(plan, "t") == "a-2"


def test_imbalance_has_hysteresis() -> None:
    from stellar_graph.board import imbalance

    assert imbalance({"a": 10, "b": 10}, False) == (False, 1.0)
    assert imbalance({"a": 30, "b": 0}, False) == (True, 2.0)  # turns on at 2.0
    assert imbalance({"a": 25, "b": 5}, True) == (True, 1.6667)  # stays on above 1.5
    assert imbalance({"a": 25, "b": 5}, False) == (False, 1.6667)  # but does not turn on there
    assert imbalance({"a": 20, "b": 10}, True) == (False, 1.3333)  # and turns off below 1.5
    assert imbalance({}, True) == (False, 0.0)
    # One task on idle agents: a high ratio, but nothing waits, so nothing to balance (issue 14).
    assert imbalance({"a": 5, "b": 0, "c": 0}, False, queued=False) == (False, 3.0)


def test_specialist_backlog_raises_workload_imbalance_in_the_plan() -> None:
    team = agents(
        {"agent_id": "a-1", "agent_type": "atlas", "capabilities": ["ethics"], "capacity": 1},
        {"agent_id": "e-1", "agent_type": "edison", "capabilities": ["engineering"], "capacity": 1},
    )
    plan = decide(board(*({"id": f"t{i}", "required_skills": ["ethics"]} for i in range(4))), team)
    assert plan.backlog_minutes == {"a-1": 240.0, "e-1": 0.0}
