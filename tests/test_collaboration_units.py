"""Unit tests of the collaboration cores: team cover, planning, LLM failure classes, votes, rules, routing."""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest
from langchain_core.exceptions import ModelAPIError
from langchain_core.messages import AIMessage, HumanMessage

from stellar_graph.agents.spec import ATLAS, EDISON, LILITH
from stellar_graph.collaboration import TeamFormationError, form_team, route_after_intake
from stellar_graph.collaboration import team as team_module
from stellar_graph.collaboration._llm import call_structured
from stellar_graph.collaboration._records import route_collaborations
from stellar_graph.collaboration.mediation import deterministic_ruling
from stellar_graph.collaboration.models import CollaborationVote, GoalPlan
from stellar_graph.collaboration.planning import check_plan, deterministic_plan
from stellar_graph.collaboration.voting import (
    competence,
    deterministic_vote,
    synthesis_proposal,
    tally,
)
from stellar_graph.config import DEFAULT_WEIGHTS
from stellar_graph.scoring import AgentPool, score_task
from stellar_graph.testing import ScriptedChatModel, structured
from tests.conftest import FIXED_NOW
from tests.test_collaboration_fakes import GOAL, PLAN

TEAM = [
    ATLAS.default_profile("atlas-001"),
    EDISON.default_profile("edison-001"),
    LILITH.default_profile("lilith-001"),
]
SKILLS = [f"k{i}" for i in range(6)]


# -- team formation ------------------------------------------------------------------------------


def _random_registry(rng: random.Random, n: int) -> dict[str, dict[str, Any]]:
    agents = {}
    for i in range(n):
        skills = rng.sample(SKILLS, rng.randint(1, 3))
        agents[f"a{i:02d}"] = {
            "agent_id": f"a{i:02d}",
            "agent_type": "AtlasAgent",
            "capabilities": {s: rng.choice([0.4, 0.7, 1.0]) for s in skills},
            "capacity": 2,
            "healthy": rng.random() > 0.15,
        }
    return agents


def _score(record: dict[str, Any], load: int, need: list[str]) -> float:
    pool = AgentPool.from_records([{**record, "load": load}])
    task = {"id": "team", "description": "x", "required_skills": need}
    return float(score_task(task, pool, weights=DEFAULT_WEIGHTS, now=FIXED_NOW).total[0])


def test_team_cover_is_minimal_then_best_scored_against_brute_force() -> None:
    rng = random.Random(7)
    checked = 0
    for _ in range(30):
        agents = _random_registry(rng, rng.randint(4, 9))
        need = rng.sample(SKILLS, rng.randint(2, 5))
        loads = {a: rng.randint(0, 2) for a in agents}
        usable = [
            a
            for a, r in agents.items()
            if r["healthy"] and loads[a] < 2 and set(r["capabilities"]) & set(need)
        ]
        held = {s for a in usable for s in agents[a]["capabilities"]}
        if not set(need) <= held:
            with pytest.raises(TeamFormationError) as info:
                form_team(
                    {"required_skills": need},
                    agents,
                    weights=DEFAULT_WEIGHTS,
                    now=FIXED_NOW,
                    loads=loads,
                )
            assert info.value.uncovered == [s for s in need if s not in held]
            continue
        team = form_team(
            {"required_skills": need}, agents, weights=DEFAULT_WEIGHTS, now=FIXED_NOW, loads=loads
        )
        scores = {a: _score(agents[a], loads[a], need) for a in usable}
        for k in range(1, len(usable) + 1):
            covers = [
                c
                for c in itertools.combinations(usable, k)
                if set(need) <= {s for a in c for s in agents[a]["capabilities"]}
            ]
            if covers:
                break
        assert len(team.agent_ids) == k
        assert sum(scores[a] for a in team.agent_ids) == pytest.approx(
            max(sum(scores[a] for a in c) for c in covers)
        )
        assert set(team.coverage) == set(need) and set(team.coverage.values()) <= set(
            team.agent_ids
        )
        checked += 1
    assert checked >= 10


def test_team_exclusions_are_explained_and_greedy_takes_over(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    agents = {a["agent_id"]: dict(a) for a in TEAM}
    agents["lilith-001"]["healthy"] = False
    with pytest.raises(TeamFormationError, match="lilith-001 has some but is unhealthy") as info:
        form_team(
            {"required_skills": ["red_teaming", "engineering"]},
            agents,
            weights=DEFAULT_WEIGHTS,
            now=FIXED_NOW,
        )
    assert (
        info.value.uncovered == ["red_teaming"] and info.value.reasons["lilith-001"] == "unhealthy"
    )
    with pytest.raises(TeamFormationError, match="edison-001 has some but is no capacity"):
        form_team(
            {"required_skills": ["engineering"]},
            agents,
            weights=DEFAULT_WEIGHTS,
            now=FIXED_NOW,
            loads={"edison-001": 3},
        )
    monkeypatch.setattr(team_module, "EXACT_SKILLS_LIMIT", 1)
    team = form_team(
        {"required_skills": ["ethics", "engineering"]},
        agents,
        weights=DEFAULT_WEIGHTS,
        now=FIXED_NOW,
    )
    assert team.method == "greedy" and team.agent_ids == ["atlas-001", "edison-001"]
    assert "left out: lilith-001: unhealthy" in team.explanation


# -- planning ------------------------------------------------------------------------------------


def test_deterministic_plan_maps_criteria_to_team_skills() -> None:
    goal = {**GOAL, "success_criteria": ["stakeholder_approval", "risk register", "zebra"]}
    plan = deterministic_plan(goal, TEAM)
    steps = plan["subtasks"]
    assert [s["required_skills"] for s in steps[:3]] == [
        ["decision_making", "ethics"],
        ["risk_analysis"],
        ["critical_review"],
    ]  # no word in common: round robin, the 3rd member's first skill
    assert steps[3]["depends_on"] == ["s1", "s2", "s3"] and steps[3]["success_criteria"] == []
    single = deterministic_plan({**GOAL, "success_criteria": ["working prototype"]}, TEAM)
    assert len(single["subtasks"]) == 1 and single["subtasks"][0]["required_skills"] == [
        "prototyping"
    ]


def _plan(**changes: Any) -> GoalPlan:
    steps = [dict(s) for s in PLAN["subtasks"]]
    for index, fields in changes.items():
        steps[int(index[1:])].update(fields)
    return GoalPlan.model_validate({"rationale": "r", "subtasks": steps})


@pytest.mark.parametrize(
    ("plan", "problem"),
    [
        (GoalPlan(subtasks=[], rationale="r"), "no subtasks"),
        (_plan(i1={"id": "s1"}), "unique short words"),
        (_plan(i2={"depends_on": ["s9"]}), "depends on unknown or itself"),
        (_plan(i0={"depends_on": ["s3"]}), "cycle: s1 -> s3 -> s1"),
        (_plan(i1={"required_skills": ["marine_biology"]}), "nobody on the team holds"),
        (
            _plan(i1={"shared_resources": ["lab"]}),
            "shared resources ['lab'] the goal does not provide",
        ),
    ],
)
def test_llm_plans_the_team_cannot_run_are_refused(plan: GoalPlan, problem: str) -> None:
    checked, why = check_plan(plan, GOAL, TEAM)
    assert checked is None and problem in (why or "")


def test_llm_plan_adjustments_are_recorded() -> None:
    plan = _plan(
        i0={"success_criteria": ["Stakeholder_Approval", "world peace"]},
        i1={"success_criteria": []},
    )
    checked, why = check_plan(plan, {**GOAL, "max_subtasks": 3}, TEAM)
    assert why is None and checked is not None
    assert checked["subtasks"][0]["success_criteria"] == ["stakeholder_approval"]
    assert checked["subtasks"][2]["success_criteria"] == ["implementation_feasibility"]
    assert checked["adjustments"] == [
        "s1: dropped criteria that are not the goal's",
        "s3: given uncovered criteria ['implementation_feasibility']",
    ]
    too_many, why = check_plan(plan, {**GOAL, "max_subtasks": 2}, TEAM)
    assert too_many is None and "allows 2" in (why or "")


# -- the LLM call and its failure classes --------------------------------------------------------


async def _call(step: Any, time_limit: float = 1.0) -> Any:
    model = ScriptedChatModel(responses=[step])
    return await call_structured(
        model, CollaborationVote, [HumanMessage("vote")], time_limit=time_limit
    )


async def test_structured_call_classifies_each_failure() -> None:
    good = await _call(structured(CollaborationVote(choice="reject", reason="no", confidence=0.4)))
    assert (
        good.parsed is not None
        and good.parsed.choice == "reject"
        and good.fallback is None
        and good.usage["output_tokens"] > 0
    )
    assert (await _call(AIMessage(content="{not json"))).fallback == "invalid_json"
    assert (
        await _call(structured({"choice": "maybe"}, name="CollaborationVote"))
    ).fallback == "wrong_schema"
    assert (await _call(AIMessage(content='{"choice": "approve"}'))).fallback == "wrong_schema"
    provider = await _call(ModelAPIError("503 overloaded"))
    assert provider.fallback == "provider_error" and "503 overloaded" in (provider.error or "")

    async def hang(_: Any) -> AIMessage:
        import asyncio

        await asyncio.sleep(5)
        return AIMessage(content="late")

    slow = await _call(hang, time_limit=0.05)
    assert slow.fallback == "timeout" and slow.record() == {
        "source": "deterministic",
        "fallback": "timeout",
        "error": slow.error,
    }


async def test_unexpected_errors_are_not_swallowed() -> None:
    with pytest.raises(KeyError):
        await _call(KeyError("a bug"))


# -- votes and rules -----------------------------------------------------------------------------


def _synthesis(met: int, done: int) -> dict[str, Any]:
    criteria = {f"c{i}": {"status": "met" if i < met else "unmet"} for i in range(2)}
    return {"criteria": criteria, "counts": {"done": done, "total": 2}}


def test_deterministic_votes_depend_on_the_synthesis_and_the_profile() -> None:
    atlas, lilith = TEAM[0], TEAM[2]
    assert deterministic_vote(atlas, _synthesis(2, 2))["choice"] == "approve"
    half = _synthesis(1, 2)
    assert deterministic_vote(atlas, half)["choice"] == "approve"  # 0.5 reaches the standard bar
    vote = deterministic_vote(lilith, half)
    assert (
        vote["choice"] == "reject"
        and "support 0.50 is below my bar 0.75 (reviewer)" in vote["reason"]
    )
    assert competence(atlas, ["ethics", "engineering"]) == pytest.approx(0.725)
    assert competence(atlas, ["engineering"]) == 0.5


def test_late_ballots_make_a_timeout() -> None:
    ballots = [
        {
            "voter": "a",
            "choice": "approve",
            "reason": "ok",
            "confidence": 1.0,
            "after_seconds": 0.1,
        },
        {
            "voter": "b",
            "choice": None,
            "reason": "late",
            "confidence": 0.0,
            "after_seconds": 9.0,
            "late": True,
        },
        {
            "voter": "c",
            "choice": None,
            "reason": "late",
            "confidence": 0.0,
            "after_seconds": 9.0,
            "late": True,
        },
    ]
    decision = tally(
        synthesis_proposal("g"),
        ballots,
        ["a", "b", "c"],
        settings={"rule": "majority", "quorum": 0.5},
        competences={},
        opened_at=1000.0,
        window_seconds=5.0,
    )
    assert (decision.status, decision.reason, decision.late_votes) == ("no_decision", "timeout", 2)


def _split(
    votes: list[tuple[str, str]],
    participation: float = 1.0,
    competence: dict[str, float] | None = None,
) -> dict[str, Any]:
    return {
        "kind": "split_vote",
        "details": {
            "votes": [
                {"voter": v, "choice": c, "reason": "", "weight": 1.0, "cast_at": 1.0}
                for v, c in votes
            ],
            "voters": [v for v, _ in votes],
            "competence": competence or {},
            "quorum": 0.5,
            "participation": participation,
        },
    }


def test_deterministic_rules_of_each_conflict_kind() -> None:
    assert deterministic_ruling(_split([("a", "approve"), ("b", "reject")], 0.4))[:2] == (
        "no_decision",
        "no_decision_without_quorum",
    )
    assert deterministic_ruling(
        _split([("a", "approve"), ("b", "reject")], 1.0, {"a": 0.9, "b": 0.6})
    )[:2] == ("approve", "competence_weighted")
    assert deterministic_ruling(_split([("a", "approve"), ("b", "reject")]))[:2] == (
        "no_decision",
        "competence_weighted",
    )
    claims = {
        "s1": {"claims": True, "confidence": 0.9, "competence": 0.5},
        "s3": {"claims": False, "confidence": 0.5, "competence": 0.9},
    }
    assert (
        deterministic_ruling({"kind": "contradiction", "details": {"claims": claims}})[0] == "unmet"
    )  # 0.45 vs 0.45: cautious
    claims["s1"]["confidence"] = 1.0
    assert (
        deterministic_ruling({"kind": "contradiction", "details": {"claims": claims}})[0] == "met"
    )
    claimants = {"b-1": {"load": 0, "capacity": 3}, "a-1": {"load": 2, "capacity": 3}}
    assert deterministic_ruling({"kind": "claim", "details": {"claimants": claimants}})[:2] == (
        "b-1",
        "load_then_id",
    )
    assert deterministic_ruling({"kind": "resource", "details": {"claimants": ["s2", "s1"]}})[
        :2
    ] == ("s2", "plan_order")


# -- routing -------------------------------------------------------------------------------------


def test_routes() -> None:
    assert route_after_intake({}) == "allocator"
    assert route_after_intake({"start_collaborations": [{}]}) == "collaboration"
    assert route_after_intake({"collaborations": {"g": {"status": "executing"}}}) == "collaboration"
    assert route_after_intake({"collaborations": {"g": {"status": "succeeded"}}}) == "allocator"
    open_conflict = {"c": {"status": "open"}}
    assert (
        route_collaborations(
            {"collaborations": {"g": {"status": "voting", "conflicts": open_conflict}}}
        )
        == "conflict_resolution"
    )
    assert (
        route_collaborations(
            {"collaborations": {"g": {"status": "voting"}, "h": {"status": "negotiating"}}}
        )
        == "negotiation"
    )
    assert (
        route_collaborations(
            {"collaborations": {"g": {"status": "succeeded"}, "h": {"status": "queued"}}}
        )
        == "collaboration"
    )
    assert route_collaborations({"collaborations": {"g": {"status": "rejected"}}}) == "allocator"
