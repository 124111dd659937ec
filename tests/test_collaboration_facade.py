"""The facade: orchestrate_collaboration, the CollaborationEngine view, team formation and vote()."""

from __future__ import annotations

from typing import Any

import pytest

from stellar_graph import InvalidInputError, StellarOrchestra
from stellar_graph.agents.spec import ATLAS, EDISON, LILITH, PYTHAGORAS
from stellar_graph.collaboration import (
    CollaborationMixin,
    TeamFormationError,
    collaboration_metrics,
)
from stellar_graph.errors import ConfigurationError
from tests.test_collaboration_fakes import AGENTS, GOAL, TEAM

Orchestra: Any = (
    StellarOrchestra
    if issubclass(StellarOrchestra, CollaborationMixin)
    else type("Orchestra", (CollaborationMixin, StellarOrchestra), {})
)
MEMORY = {"persistence": {"backend": "memory"}}


async def _orchestra(clock: Any, agents: list[dict[str, Any]] = AGENTS) -> Any:
    orchestra = Orchestra(MEMORY, clock=clock)
    await orchestra.start_orchestration()
    for agent in agents:
        await orchestra.register_agent(agent)
    return orchestra


async def test_orchestrate_collaboration_returns_the_finished_record(fixed_clock: Any) -> None:
    orchestra = await _orchestra(fixed_clock)
    try:
        record = await orchestra.orchestrate_collaboration(TEAM, GOAL)
        assert (
            record["status"] == "succeeded" and record["outcome"]["decided_by"] == "vote:majority"
        )
        assert record["goal"]["objective"] == GOAL["objective"] and record["agent_ids"] == TEAM
        assert orchestra.state()["collaborations"][GOAL["id"]] == record
        again = await orchestra.collaboration_engine.facilitate_collaboration(
            TEAM, {**GOAL, "id": "second"}, rule="unanimous"
        )
        assert again["votes"]["rule"] == "unanimous"
        assert collaboration_metrics(orchestra.state())["by_status"]["succeeded"] >= 1
        with pytest.raises(
            InvalidInputError, match="'ethics-innovation-synthesis' is already used"
        ):
            await orchestra.orchestrate_collaboration(TEAM, GOAL)
    finally:
        await orchestra.stop_orchestration()


async def test_bad_requests_fail_before_anything_runs(fixed_clock: Any) -> None:
    orchestra = await _orchestra(fixed_clock)
    try:
        with pytest.raises(
            InvalidInputError, match=r"`agent_ids` = \['ghost-1'\] are not registered"
        ):
            await orchestra.orchestrate_collaboration(["atlas-001", "ghost-1"], GOAL)
        with pytest.raises(InvalidInputError, match=r"`goal.priority`='urgent'"):
            await orchestra.orchestrate_collaboration(TEAM, {**GOAL, "priority": "urgent"})
        with pytest.raises(InvalidInputError, match=r"`consensus.quorum`=1.5"):
            await orchestra.orchestrate_collaboration(TEAM, GOAL, quorum=1.5)
        assert orchestra.state().get("collaborations") in (None, {})
    finally:
        await orchestra.stop_orchestration()


def _roster() -> list[dict[str, Any]]:
    return [
        ATLAS.default_profile("atlas-001"),
        EDISON.default_profile("edison-001"),
        LILITH.default_profile("lilith-001"),
        PYTHAGORAS.default_profile("pythagoras-001"),
        # A generalist holding ethics and engineering at once, but only at level 0.5.
        {
            "agent_id": "polymath-001",
            "agent_type": "AtlasAgent",
            "capabilities": {"ethics": 0.5, "engineering": 0.5},
        },
    ]


async def test_form_cross_functional_team_fewest_then_best(fixed_clock: Any) -> None:
    orchestra = await _orchestra(fixed_clock, _roster())
    try:
        team = await orchestra.form_cross_functional_team(
            {"skills": ["ethics", "engineering", "statistics"]}
        )
        # Two agents suffice (polymath + pythagoras); three specialists would score more but are more.
        assert team["agent_ids"] == ["polymath-001", "pythagoras-001"]  # equal scores: by id
        assert team["scores"]["polymath-001"] == team["scores"]["pythagoras-001"]
        assert team["coverage"] == {
            "ethics": "polymath-001",
            "engineering": "polymath-001",
            "statistics": "pythagoras-001",
        }
        assert (
            team["method"] == "exact" and "2 agent(s) cover all 3 skill(s)" in team["explanation"]
        )
        pair = await orchestra.collaboration_engine.form_cross_functional_team(
            {"required_skills": ["ethics", "red_teaming"]}
        )
        assert pair["agent_ids"] == ["lilith-001"]  # one agent holds both
        with pytest.raises(TeamFormationError, match=r"skill\(s\) \['marine_biology'\]") as info:
            await orchestra.form_cross_functional_team(
                {"required_skills": ["ethics", "marine_biology"]}
            )
        assert info.value.uncovered == ["marine_biology"]
        with pytest.raises(TeamFormationError, match="needs 2 agents"):
            await orchestra.form_cross_functional_team(
                {"required_skills": ["ethics", "statistics"], "max_size": 1}
            )
        with pytest.raises(InvalidInputError, match="required_skills"):
            await orchestra.form_cross_functional_team({"required_skills": []})
    finally:
        await orchestra.stop_orchestration()


def test_vote_is_pure_and_explicit_about_no_decision(fixed_clock: Any) -> None:
    orchestra = Orchestra(MEMORY, clock=fixed_clock)  # not even started: no graph involved
    orchestra._final_state = {"agents": {a["agent_id"]: a for a in _roster()}}
    votes = [
        {"voter": "atlas-001", "choice": "approve", "reason": "sound"},
        {"voter": "edison-001", "choice": "reject", "reason": "not buildable"},
    ]
    tie = orchestra.vote(
        {"proposal_id": "p1", "description": "Ship?"}, ["atlas-001", "edison-001"], votes=votes
    )
    assert (tie["status"], tie["outcome"], tie["reason"]) == ("no_decision", None, "tie")
    weighted = orchestra.vote(
        {"proposal_id": "p1", "description": "Ship?", "required_skills": ["engineering"]},
        ["atlas-001", "edison-001"],
        "weighted",
        votes=votes,
    )
    assert (weighted["outcome"], weighted["reason"]) == (
        "reject",
        "weighted",
    )  # the engineer counts on engineering
    quorum = orchestra.collaboration_engine.vote(
        {"proposal_id": "p2"},
        ["atlas-001", "edison-001", "lilith-001"],
        votes=votes[:1],
        quorum=0.5,
    )
    assert quorum["reason"] == "quorum_not_met"
    with pytest.raises(ConfigurationError, match="'plurality' is not a voting rule"):
        orchestra.vote({"proposal_id": "p3"}, ["atlas-001"], "plurality", votes=votes[:1])
    with pytest.raises(InvalidInputError, match=r"votes\[0\].*needs `choice`"):
        orchestra.vote({"proposal_id": "p3"}, ["atlas-001"], votes=[{"voter": "atlas-001"}])
