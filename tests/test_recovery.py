"""Failure repair: an agent error reassigns the task to another agent; an agent that keeps
failing is taken out and only its queue is re-planned."""

from __future__ import annotations

from typing import Any

from stellar_graph import EDISON, AgentAnswer, StellarOrchestra
from stellar_graph.recovery import after_report
from stellar_graph.testing import ScriptedChatModel, structured

MEMORY = {"persistence": {"backend": "memory"}, "emergency_protocols": {"retry_initial_interval_seconds": 0.01}}


def _agent_of(messages: list[Any]) -> str:
    return "edison-001" if "instance edison-001" in messages[0].content else "other"


def _flaky_first_agent(calls: list[str]):
    def call(messages):
        who = _agent_of(messages)
        calls.append(who)
        if who == "edison-001":
            raise ConnectionError("edison-001 is unreachable")
        return structured(AgentAnswer(result="done", criteria_met=[], confidence=1.0))

    return call


async def test_an_agent_error_reassigns_the_task_to_another_agent(fixed_clock) -> None:
    calls: list[str] = []
    model = ScriptedChatModel(responses=[_flaky_first_agent(calls)] * 4)
    # `dynamic` places tied agents deterministically (registration order); `adaptive` would let
    # the learner pick between the two identical agents, and this test needs edison-001 first.
    config = {**MEMORY, "orchestration_mode": "dynamic"}
    async with StellarOrchestra(config, model=model, clock=fixed_clock) as orchestra:
        await orchestra.register_agent(EDISON.default_profile("edison-001"))
        await orchestra.register_agent(EDISON.default_profile("edison-002"))
        [first] = await orchestra.orchestrate_multiple_tasks(
            [{"id": "t1", "description": "Build", "required_skills": ["engineering"]}]
        )
        assert first.agent_id == "edison-001"
        await orchestra.wait_idle()
        task = orchestra.state()["tasks"]["t1"]
    assert (task["status"], task["agent_id"], task["attempt"]) == ("completed", "edison-002", 2)
    assert task["excluded_agents"] == ["edison-001"]
    [step] = task["recovery"]
    assert {k: v for k, v in step.items() if k != "at"} == {
        "step": "reassign", "attempt": 1, "from": "edison-001", "error": "ConnectionError: edison-001 is unreachable"
    }
    assert step["at"]  # when the failed attempt finished
    assert calls == ["edison-001"] * 3 + ["other"]  # retried (RetryPolicy), then reassigned


async def test_an_agent_failing_twice_is_taken_out_and_only_its_queue_moves(fixed_clock) -> None:
    calls: list[str] = []
    failures: list[dict] = []
    model = ScriptedChatModel(responses=[_flaky_first_agent(calls)] * 10)
    async with StellarOrchestra(MEMORY, model=model, clock=fixed_clock) as orchestra:
        orchestra.on("agent_failure", failures.append)
        await orchestra.register_agent(EDISON.default_profile("edison-001", capacity=1, speed=4.0))
        await orchestra.register_agent(EDISON.default_profile("edison-002", capacity=1))
        allocations = await orchestra.orchestrate_multiple_tasks(
            [{"id": f"t{i}", "description": "Build", "required_skills": ["engineering"],
              "estimated_duration_minutes": 60} for i in range(4)]
        )
        planned = {a.task_id: a.agent_id for a in allocations}
        await orchestra.wait_idle()
        state = orchestra.state()
    on_first = sorted(t for t, a in planned.items() if a == "edison-001")
    assert len(on_first) == 3  # the fast agent got the longer queue
    assert state["agents"]["edison-001"]["healthy"] is False
    assert "2 agent errors in a row" in state["agents"]["edison-001"]["health_reason"]
    assert [f["returned_tasks"] for f in failures] == [on_first[2:]]  # the one it never started
    tasks = state["tasks"]
    assert {t: r["status"] for t, r in tasks.items()} == dict.fromkeys(tasks, "completed")
    assert {r["agent_id"] for r in tasks.values()} == {"edison-002"}
    assert calls.count("edison-001") == 2 * 3  # two tasks, three attempts each, then taken out


def test_task_failures_are_outcomes_not_reassignments() -> None:
    task = {"id": "t", "attempt": 1}
    missed = {"task_id": "t", "agent_id": "a", "status": "failed", "error": "success criteria not met: ['x']"}
    assert after_report(task, missed, strategies=["reassign"], max_attempts=3)["status"] == "failed"
    crashed = {**missed, "agent_error": True, "error": "boom"}
    assert after_report(task, crashed, strategies=["reassign"], max_attempts=3)["status"] == "pending"
    assert after_report(task, crashed, strategies=["retry"], max_attempts=3)["status"] == "failed"
    assert after_report({"id": "t", "attempt": 3}, crashed, strategies=["reassign"], max_attempts=3)["status"] == "failed"


def test_a_recovery_that_outlasts_its_timeout_takes_the_end_of_the_ladder() -> None:
    """`failure_recovery_timeout_minutes` was validated but never read (issue 14)."""
    from stellar_graph.recovery import after_report

    task = {"id": "t", "attempt": 2, "recovery": [{"step": "reassign", "at": "2026-01-01T10:00:00+00:00"}]}
    crashed = {"status": "failed", "agent_error": True, "error": "boom", "agent_id": "a-2",
               "finished_at": "2026-01-01T10:45:00+00:00"}
    late = after_report(task, crashed, strategies=["reassign", "escalate"], max_attempts=5, timeout_minutes=30)
    assert late["status"] == "escalating" and "failure_recovery_timeout_minutes=30" in late["error"]
    assert "took 45.0" in late["error"] and "boom" in late["error"]
    on_time = after_report(task, crashed, strategies=["reassign", "escalate"], max_attempts=5, timeout_minutes=60)
    assert on_time["status"] == "pending"
