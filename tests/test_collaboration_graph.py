"""Collaborations through the compiled orchestra graph: simulated agents and scripted models.

Covers admission (queue / reject at max_concurrent_collaborations), invalid goals, Contract Net
failures and rounds, tied claims, shared-resource contention, contradictions, late bids and
late votes, timeouts of the LLM steps, and the record, events and metrics each leaves.
"""

from __future__ import annotations

import copy
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver

from stellar_graph import create_orchestra
from stellar_graph.agents.spec import ATLAS
from stellar_graph.collaboration import collaboration_metrics
from stellar_graph.graphs.runtime import open_runtime
from tests.test_collaboration_fakes import AGENTS, GOAL, PLAN, TEAM, Brain, scripted_model

RUN = {"configurable": {"thread_id": "collab"}, "recursion_limit": 300}


async def _run(
    payload: dict[str, Any],
    clock: Any,
    *,
    model: Any = None,
    config: dict[str, Any] | None = None,
    agents: list[dict[str, Any]] = AGENTS,
) -> tuple[dict[str, Any], Any]:
    async with open_runtime(config or {}, thread_id=RUN["configurable"]["thread_id"], model=model, clock=clock,
                            checkpointer=InMemorySaver()) as runtime:
        out = await runtime.run({"register_agents": agents, **payload})
    return out, runtime.control


def _start(goal: dict[str, Any] = GOAL, team: list[str] = TEAM, **options: Any) -> dict[str, Any]:
    return {"goal": goal, "agent_ids": team, **options}


async def test_simulated_collaboration_and_tasks_in_one_run(fixed_clock: Any) -> None:
    task = {
        "id": "t1",
        "description": "Survey the literature",
        "required_skills": ["knowledge_synthesis"],
    }
    out, app = await _run({"start_collaborations": [_start()], "submit_tasks": [task]}, fixed_clock)
    rec = out["collaborations"][GOAL["id"]]
    assert rec["status"] == "succeeded"
    assert (rec["plan"]["source"], rec["plan"]["fallback"]) == ("deterministic", "simulated")
    assert [s["required_skills"] for s in rec["plan"]["subtasks"]] == [
        ["decision_making", "ethics"],
        ["system_design"],
        ["knowledge_synthesis", "research_coordination"],
    ]
    assert {a["subtask_id"]: a["agent_id"] for a in rec["rounds"][0]["awards"]} == {
        "s1": "atlas-001",
        "s2": "edison-001",
        "s3": "atlas-001",
    }
    assert all(st["status"] == "done" and st["simulated"] for st in rec["subtasks"].values())
    assert {(b["voter"], b["choice"], b["fallback"]) for b in rec["votes"]["ballots"]} == {
        (a, "approve", "simulated") for a in TEAM
    }
    assert "reaches my bar 0.75 (reviewer)" in next(
        b["reason"] for b in rec["votes"]["ballots"] if b["voter"] == "lilith-001"
    )
    assert rec["outcome"]["decided_by"] == "vote:majority" and rec["usage"]["llm_calls"] == 0
    # The path ends at the allocator: the task submitted alongside was allocated and done.
    assert out["tasks"]["t1"]["status"] in {"completed", "failed"}
    assert (
        out["metrics"]["collaborations_started"] == 1
        and out["metrics"]["collaborations_succeeded"] == 1
    )
    assert collaboration_metrics(out)["success_rate"] == 1.0
    state = await app.aget_state(RUN)  # the whole record is in the checkpoint
    assert state.values["collaborations"][GOAL["id"]]["outcome"] == rec["outcome"]
    assert "collab_reports" not in out and state.values.get("collab_reports") == {}
    kinds = [e["type"] for e in state.values["events"] if e["type"].startswith("collaboration")]
    assert kinds[0] == "collaboration_started" and kinds[-1] == "collaboration_finished"
    assert kinds.count("collaboration_subtask_completed") == 3


async def test_max_concurrent_queues_then_runs_the_next(fixed_clock: Any) -> None:
    second = {**GOAL, "id": "second-goal"}
    out, app = await _run(
        {"start_collaborations": [_start(), _start(second)]},
        fixed_clock,
        config={"collaboration": {"max_concurrent_collaborations": 1}},
    )
    first, other = out["collaborations"][GOAL["id"]], out["collaborations"]["second-goal"]
    assert first["status"] == "succeeded"
    # Seeded simulation: edison fails the second goal's s2, nobody else can do it, the team rejects.
    assert other["status"] == "failed" and other["subtasks"]["s2"]["status"] == "failed"
    assert other["rounds"][1]["awards"][0]["reason"] == "all_refused"
    events = [
        e
        for e in (await app.aget_state(RUN)).values["events"]
        if e["type"].startswith("collaboration")
    ]
    queued = next(e for e in events if e["type"] == "collaboration_queued")
    assert queued["collaboration_id"] == "second-goal"
    assert "the limit (collaboration.max_concurrent_collaborations) is 1" in queued["message"]
    order = [
        (e["type"], e["collaboration_id"])
        for e in events
        if e["type"] in {"collaboration_started", "collaboration_finished"}
    ]
    assert order == [
        ("collaboration_started", GOAL["id"]),
        ("collaboration_finished", GOAL["id"]),
        ("collaboration_started", "second-goal"),
        ("collaboration_finished", "second-goal"),
    ]


async def test_max_concurrent_can_reject_instead(fixed_clock: Any) -> None:
    second = {**GOAL, "id": "second-goal"}
    out, _ = await _run(
        {"start_collaborations": [_start(), _start(second, when_full="reject")]},
        fixed_clock,
        config={"collaboration": {"max_concurrent_collaborations": 1}},
    )
    rejected = out["collaborations"]["second-goal"]
    assert rejected["status"] == "rejected" and "plan" not in rejected
    assert rejected["message"].startswith("rejected: 1 collaboration(s) are active")
    assert "Fix: retry when one finishes, or raise the limit." in rejected["message"]
    assert out["metrics"]["collaborations_rejected"] == 1
    assert collaboration_metrics(out)["success_rate"] == 1.0  # rejected ones never started


async def test_an_invalid_goal_is_recorded_and_the_run_goes_on(fixed_clock: Any) -> None:
    bad = {
        "goal": {"id": "g2", "description": "x", "success_criteria": []},
        "agent_ids": ["atlas-001", "nobody-9"],
    }
    task = {"id": "t1", "description": "Survey", "required_skills": ["knowledge_synthesis"]}
    out, _ = await _run({"start_collaborations": [bad], "submit_tasks": [task]}, fixed_clock)
    rec = out["collaborations"]["g2"]
    assert rec["status"] == "invalid"
    assert (
        "`goal.success_criteria`=[]" in rec["error"]
        and "Fix the field(s) named above" in rec["error"]
    )
    assert out["tasks"]["t1"]["status"] in {"completed", "failed"}
    out2, _ = await _run(
        {"start_collaborations": [{"goal": GOAL, "agent_ids": ["atlas-001", "nobody-9"]}]},
        fixed_clock,
    )
    unknown = out2["collaborations"][GOAL["id"]]
    assert (
        unknown["status"] == "invalid"
        and "`agent_ids` = ['nobody-9'] are not registered" in unknown["error"]
    )


async def test_a_failed_subtask_is_renegotiated_to_another_agent(fixed_clock: Any) -> None:
    brain = Brain(answers={"s1@atlas-001": "http_500"})
    out, _ = await _run(
        {"start_collaborations": [_start()]}, fixed_clock, model=scripted_model(brain)
    )
    rec = out["collaborations"][GOAL["id"]]
    s1 = rec["subtasks"]["s1"]
    assert [(a["agent_id"], a["status"]) for a in s1["attempts"]] == [
        ("atlas-001", "failed"),
        ("lilith-001", "done"),
    ]
    assert "ModelAPIError" in s1["attempts"][0]["error"]
    assert [r["round"] for r in rec["rounds"]] == [1, 2]
    assert [(a["subtask_id"], a["agent_id"]) for a in rec["rounds"][1]["awards"]] == [
        ("s1", "lilith-001")
    ]
    # atlas failed it, so it is not invited again; edison is, and refuses (no ethics skills).
    assert {(b["agent_id"], b["kind"]) for b in rec["rounds"][1]["bids"]} == {
        ("lilith-001", "propose"),
        ("edison-001", "refuse"),
    }
    performatives = [
        m["performative"] for m in rec["negotiation"]["messages"] if m["subtask_id"] == "s1"
    ]
    assert performatives.count("failure") == 1 and performatives[-1] == "inform-done"
    assert rec["subtasks"]["s3"]["wave"] == 3 and rec["status"] == "succeeded"


async def test_rounds_limit_leaves_failures_and_blocks_dependents(fixed_clock: Any) -> None:
    brain = Brain(answers={"s1": "http_500"})
    out, _ = await _run(
        {"start_collaborations": [_start()]},
        fixed_clock,
        model=scripted_model(brain),
        config={"collaboration": {"negotiation_rounds_limit": 1}},
    )
    rec = out["collaborations"][GOAL["id"]]
    assert len(rec["rounds"]) == 1
    assert rec["subtasks"]["s1"]["status"] == "failed" and rec["subtasks"]["s2"]["status"] == "done"
    assert (
        rec["subtasks"]["s3"]["status"] == "blocked" and "['s1']" in rec["subtasks"]["s3"]["reason"]
    )
    assert rec["synthesis"]["counts"] == {"done": 1, "total": 3}
    assert rec["synthesis"]["criteria"]["stakeholder_approval"]["status"] == "unmet"
    # The scripted voters approve what there is, but not every subtask was done: not a success.
    assert rec["status"] == "failed" and "were not done" in rec["outcome"]["reason"]


def _two_atlases() -> list[dict[str, Any]]:
    return [*AGENTS, ATLAS.default_profile("atlas-002")]


TIE_PLAN = {
    "rationale": "r",
    "subtasks": [
        {
            **PLAN["subtasks"][0],
            "success_criteria": ["stakeholder_approval", "implementation_feasibility"],
        }
    ],
}


async def test_tied_claims_are_mediated_and_the_choice_is_awarded(fixed_clock: Any) -> None:
    brain = Brain(plan=TIE_PLAN, mediator={"claim": "atlas-002"})
    team = ["atlas-001", "atlas-002", "edison-001"]
    out, _ = await _run(
        {"start_collaborations": [_start(team=team)]},
        fixed_clock,
        model=scripted_model(brain),
        agents=_two_atlases(),
    )
    rec = out["collaborations"][GOAL["id"]]
    claim = rec["conflicts"]["claim:s1:r1"]
    assert claim["kind"] == "claim" and claim["options"] == ["atlas-001", "atlas-002"]
    assert (claim["resolution"]["decision"], claim["resolution"]["decided_by"]) == (
        "atlas-002",
        "mediator:llm",
    )
    (award,) = rec["rounds"][0]["awards"]
    assert award["agent_id"] == "atlas-002" and award["rejected"] == ["atlas-001"]
    assert (
        next(b for b in rec["rounds"][0]["bids"] if b["agent_id"] == "atlas-002").get("tie_break")
        == "won"
    )


async def test_tied_claims_without_a_model_follow_the_rule(fixed_clock: Any) -> None:
    team = ["atlas-001", "atlas-002", "edison-001"]
    out, _ = await _run(
        {"start_collaborations": [_start(team=team)]}, fixed_clock, agents=_two_atlases()
    )
    rec = out["collaborations"][GOAL["id"]]
    claims = [c for c in rec["conflicts"].values() if c["kind"] == "claim"]
    assert claims and all(c["resolution"]["decided_by"] == "rule:load_then_id" for c in claims)
    assert all(c["resolution"]["fallback"] == "simulated" for c in claims)
    assert rec["conflicts"]["claim:s1:r1"]["resolution"]["decision"] == "atlas-001"


async def test_shared_resource_contention_is_mediated(fixed_clock: Any) -> None:
    plan = copy.deepcopy(PLAN)
    for step in plan["subtasks"][:2]:
        step["shared_resources"] = ["lab"]
    goal = {**GOAL, "shared_resources": {"lab": 1}}
    brain = Brain(plan=plan, mediator={"resource": "s2"})
    out, _ = await _run(
        {"start_collaborations": [_start(goal)]}, fixed_clock, model=scripted_model(brain)
    )
    rec = out["collaborations"][GOAL["id"]]
    conflict = rec["conflicts"]["resource:lab:w1"]
    assert conflict["options"] == ["s1", "s2"] and conflict["parties"] == [
        "atlas-001",
        "edison-001",
    ]
    assert conflict["resolution"]["decided_by"] == "mediator:llm"
    assert [rec["subtasks"][s]["wave"] for s in ("s2", "s1", "s3")] == [1, 2, 3]
    assert "mediate" in [c["kind"] for c in brain.calls] and "only 1 unit(s)" in conflict["summary"]


async def test_contradicting_answers_are_mediated_before_the_vote(fixed_clock: Any) -> None:
    plan = copy.deepcopy(PLAN)
    plan["subtasks"][2]["success_criteria"] = [
        "stakeholder_approval"
    ]  # the reviewer answers for it too
    brain = Brain(
        plan=plan,
        answers={"s3": {"criteria_met": [], "result": "Stakeholders were never consulted."}},
        mediator={"contradiction": "unmet"},
    )
    out, _ = await _run(
        {"start_collaborations": [_start()]}, fixed_clock, model=scripted_model(brain)
    )
    rec = out["collaborations"][GOAL["id"]]
    s3 = rec["subtasks"]["s3"]
    assert s3["status"] == "done" and s3["criteria_unmet"] == [
        "stakeholder_approval"
    ]  # an answer, not a crash
    conflict = rec["conflicts"]["contradiction:stakeholder_approval"]
    assert (
        conflict["parties"] == ["s1", "s3"]
        and "['s1'] claim 'stakeholder_approval'" in conflict["summary"]
    )
    assert conflict["resolution"]["decided_by"] == "mediator:llm"
    assert rec["synthesis"]["criteria"]["stakeholder_approval"] == {
        "status": "unmet",
        "claimed_by": ["s1"],
        "decided_by": "mediator:llm",
    }
    vote_texts = [c["text"] for c in brain.calls if c["kind"] == "vote"]
    assert all(
        "- stakeholder_approval: unmet" in t for t in vote_texts
    )  # voters see the resolution


async def test_late_bids_are_ignored_and_counted(fixed_clock: Any) -> None:
    brain = Brain(note_delays={"lilith-001": 0.4})
    out, _ = await _run(
        {"start_collaborations": [_start(bid_notes=True, bid_window_seconds=0.15)]},
        fixed_clock,
        model=scripted_model(brain),
    )
    rec = out["collaborations"][GOAL["id"]]
    round1 = rec["rounds"][0]
    lilith = [b for b in round1["bids"] if b["agent_id"] == "lilith-001" and b["kind"] == "propose"]
    assert lilith and all(b["status"] == "late" for b in lilith)
    assert round1["late"] == len(lilith)
    assert rec["negotiation"]["counters"]["late"] == sum(
        r["late"] for r in rec["rounds"]
    )  # the core's count
    assert {f["fallback"] for f in rec["fallbacks"] if f["step"].startswith("bid_note:")} == {
        "timeout"
    }
    s3 = next(a for a in round1["awards"] if a["subtask_id"] == "s3")
    assert (s3["agent_id"], s3["reason"], s3["late"]) == (
        None,
        "no_proposals",
        1,
    )  # 2 refused, 1 late
    atlas = next(
        b for b in round1["bids"] if b["agent_id"] == "atlas-001" and b["subtask_id"] == "s1"
    )
    assert atlas["note"] == "atlas-001 will do it carefully." and atlas["note_source"] == "llm"
    # Round 2 offers s3 again, lilith is late again and nothing changes: no third round.
    assert len(rec["rounds"]) == 2 and rec["subtasks"]["s3"]["status"] == "unassigned"
    assert rec["status"] == "failed" and "subtask(s) s3 were not done" in rec["outcome"]["reason"]


async def test_hung_planner_times_out_into_the_deterministic_plan(fixed_clock: Any) -> None:
    brain = Brain(plan="timeout")
    out, _ = await _run(
        {"start_collaborations": [_start()]},
        fixed_clock,
        model=scripted_model(brain),
        config={"llm": {"timeout_seconds": 0.1}},
    )
    plan = out["collaborations"][GOAL["id"]]["plan"]
    assert (plan["source"], plan["fallback"]) == ("deterministic", "timeout") and "0.1 s" in plan[
        "error"
    ]


async def test_votes_after_the_consensus_window_are_late_and_nobody_decides(
    fixed_clock: Any,
) -> None:
    brain = Brain(votes="timeout", mediator="timeout")
    config = {
        "messaging": {"consensus_timeout_minutes": 0.002},
        "collaboration": {"conflict_resolution_timeout_minutes": 0.002},
    }
    out, _ = await _run(
        {"start_collaborations": [_start()]},
        fixed_clock,
        model=scripted_model(brain),
        config=config,
    )
    rec = out["collaborations"][GOAL["id"]]
    assert all(b["late"] and b["choice"] is None for b in rec["votes"]["ballots"])
    decision = rec["votes"]["decision"]
    assert (decision["reason"], decision["late_votes"], decision["participation"]) == (
        "timeout",
        3,
        0.0,
    )
    resolution = rec["conflicts"]["split_vote"]["resolution"]
    assert (resolution["fallback"], resolution["decided_by"]) == (
        "timeout",
        "rule:no_decision_without_quorum",
    )
    assert rec["status"] == "no_decision" and rec["outcome"]["decision"] is None
    assert collaboration_metrics(out)["success_rate"] == 0.0


async def test_an_interrupted_collaboration_resumes_from_the_sqlite_checkpoint(
    fixed_clock: Any, tmp_path: Any
) -> None:
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    path = str(tmp_path / "checkpoints.sqlite")
    payload = {"register_agents": AGENTS, "start_collaborations": [_start()]}
    async with AsyncSqliteSaver.from_conn_string(path) as saver:
        app = create_orchestra(clock=fixed_clock).compile(
            checkpointer=saver, interrupt_before=["consensus"]
        )
        await app.ainvoke(payload, RUN)
        paused = (await app.aget_state(RUN)).values["collaborations"][GOAL["id"]]
    assert paused["status"] == "voting" and all(
        st["status"] == "done" for st in paused["subtasks"].values()
    )
    assert "votes" not in paused
    async with AsyncSqliteSaver.from_conn_string(path) as saver:  # a new process, in effect
        app = create_orchestra(clock=fixed_clock).compile(checkpointer=saver)
        out = await app.ainvoke(None, RUN)
    record = out["collaborations"][GOAL["id"]]
    assert (
        record["status"] == "succeeded" and record["subtasks"] == paused["subtasks"]
    )  # nothing re-ran
    assert record["usage"]["agent_calls"] == 3
