"""The last rungs of the ladder: escalation to a human through interrupt(), and the seed's
task_failure handler."""

from __future__ import annotations

from stellar_graph import PYTHAGORAS, AgentAnswer, StellarOrchestra
from stellar_graph.testing import ScriptedChatModel, structured

TASK = {"id": "t1", "description": "Compute", "required_skills": ["statistics"]}
OK = structured(AgentAnswer(result="computed", criteria_met=[], confidence=1.0))
DOWN = ConnectionError("model endpoint down")


def _config(*strategies: str) -> dict:
    return {"persistence": {"backend": "memory"},
            "emergency_protocols": {"recovery_strategies": list(strategies), "retry_initial_interval_seconds": 0.01}}


async def _escalated(orchestra: StellarOrchestra) -> None:
    await orchestra.register_agent(PYTHAGORAS.default_profile("pythagoras-001"))
    await orchestra.orchestrate_task(TASK)
    await orchestra.wait_idle()


async def test_escalation_interrupts_and_a_human_resolution_completes_the_task(fixed_clock) -> None:
    model = ScriptedChatModel(responses=[DOWN, DOWN, DOWN])
    async with StellarOrchestra(_config("retry", "reassign", "escalate"), model=model, clock=fixed_clock) as orchestra:
        await _escalated(orchestra)
        # Visible in the thread's state: the run waits on the escalation node's interrupt.
        snapshot = await orchestra.app.aget_state({"configurable": {"thread_id": orchestra.thread_id}})
        assert snapshot.next == ("escalation",)
        [pending] = [i for task in snapshot.tasks for i in task.interrupts]
        assert pending.value["tasks"][0]["task_id"] == "t1"
        assert "model endpoint down" in pending.value["tasks"][0]["error"]
        assert set(orchestra.pending_escalations()) == {"t1"}

        await orchestra.resolve_escalations({"t1": {"action": "resolve", "result": "answered by a human"}})
        task = orchestra.state()["tasks"]["t1"]
    assert (task["status"], task["result"]) == ("completed", "answered by a human")
    assert task["recovery"][-1] == {"step": "escalate", "by": "human",
                                    "decision": {"action": "resolve", "result": "answered by a human"}}
    model.assert_complete()


async def test_a_retry_decision_runs_the_ladder_again_and_a_bad_one_keeps_it_escalated(fixed_clock) -> None:
    events: list[dict] = []
    model = ScriptedChatModel(responses=[DOWN, DOWN, DOWN, OK])
    async with StellarOrchestra(_config("retry", "escalate"), model=model, clock=fixed_clock) as orchestra:
        orchestra.on("escalation_invalid", events.append)
        await _escalated(orchestra)
        await orchestra.resolve_escalations({"t1": {"action": "reassign", "agent_id": "ghost-001"}})
        assert set(orchestra.pending_escalations()) == {"t1"}  # still waiting: the decision was invalid
        assert "registered `agent_id`" in events[0]["problem"]
        await orchestra.resolve_escalations({"t1": "retry"})  # returns once the decision is applied
        assert orchestra.state()["tasks"]["t1"]["status"] in {"allocated", "running"}
        task = {**await orchestra.monitor_task_execution("alloc-t1"), **orchestra.state()["tasks"]["t1"]}
    assert (task["status"], task["result"]) == ("completed", "computed")


async def test_seed_task_failure_handler_gets_a_recovery_record(fixed_clock) -> None:
    records: list[dict] = []
    model = ScriptedChatModel(responses=[DOWN])
    async with StellarOrchestra(_config("reassign"), model=model, clock=fixed_clock) as orchestra:

        async def on_failure(failure: dict) -> None:
            records.append(await orchestra.handle_task_failure(failure))

        orchestra.on("task_failure", on_failure)  # the seed's event name
        await orchestra.register_agent(PYTHAGORAS.default_profile("pythagoras-001"))
        await orchestra.orchestrate_task(TASK)
        await orchestra.wait_idle()
    [record] = [r for r in records if r["status"] == "failed"]
    assert record["recovery_id"] == "recovery-t1-1" and record["escalated"] is False
    assert record["steps"][0]["step"] == "reassign" and "model endpoint down" in record["error"]
