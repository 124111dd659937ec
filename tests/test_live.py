"""The live orchestra under concurrent calls, on the default SQLite backend and in memory.

Every facade call returns with what it changed visible (read your writes); calls racing on one
orchestra neither drop nor double-book anything; a duplicate gets its own error. Agents work in
task runs beside the short control runs, so urgent work does not wait for unrelated agent work.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import pytest

from stellar_graph import (
    EDISON,
    PYTHAGORAS,
    AgentAnswer,
    DuplicateAgentError,
    DuplicateTaskError,
    StellarOrchestra,
)
from stellar_graph.testing import ScriptedChatModel, structured
from tests.test_collaboration_fakes import AGENTS, GOAL, TEAM

BACKENDS = {"sqlite": {}, "memory": {"persistence": {"backend": "memory"}}}


@pytest.fixture(params=sorted(BACKENDS))
def config(request: pytest.FixtureRequest) -> dict[str, Any]:
    return dict(BACKENDS[request.param])  # sqlite: under the test's STELLAR_GRAPH_DATA_DIR


def _task(i: int, skill: str = "engineering") -> dict[str, Any]:
    return {"id": f"t{i:03d}", "description": f"Build part {i}", "required_skills": [skill]}


async def test_twenty_concurrent_registrations_each_see_their_agent(config: dict[str, Any]) -> None:
    async with StellarOrchestra(config) as orchestra:

        async def register(i: int) -> str:
            profile = await orchestra.register_agent(EDISON.default_profile(f"edison-{i:03d}"))
            return orchestra.get_agent(profile.agent_id)["agent_id"]  # visible as the call returns

        seen = await asyncio.gather(*(register(i) for i in range(20)))
        assert seen == [f"edison-{i:03d}" for i in range(20)]
        assert len(orchestra.registered_agents()) == 20
        with pytest.raises(DuplicateAgentError):
            await orchestra.register_agent(EDISON.default_profile("edison-007"))


async def test_a_hundred_concurrent_tasks_each_allocated_once(config: dict[str, Any]) -> None:
    async with StellarOrchestra(config) as orchestra:
        for i in range(4):
            await orchestra.register_agent(EDISON.default_profile(f"edison-{i}", capacity=5))
        allocations = await asyncio.gather(*(orchestra.orchestrate_task(_task(i)) for i in range(100)))
        assert [a.task_id for a in allocations] == [f"t{i:03d}" for i in range(100)]
        assert all(a.agent_id and a.agent_id.startswith("edison-") for a in allocations)
        assert {a.status for a in allocations} <= {"allocated", "queued"}
        await orchestra.wait_idle()
        records = await orchestra.get_task_records([a.task_id for a in allocations])
        metrics = orchestra.state()["metrics"]
    assert {r["task"]["status"] for r in records.values()} <= {"completed", "failed"} and len(records) == 100
    assert {r["task"]["runs"] for r in records.values()} == {1}  # each ran once
    assert metrics["tasks_submitted"] == 100 and metrics["agent_calls"] == 100


async def test_racing_duplicates_get_one_allocation_and_one_error(config: dict[str, Any]) -> None:
    async with StellarOrchestra(config) as orchestra:
        await orchestra.register_agent(EDISON.default_profile("edison-001"))
        outcomes = await asyncio.gather(
            orchestra.orchestrate_task(_task(1)), orchestra.orchestrate_task(_task(1)), return_exceptions=True
        )
        assert sorted(type(o).__name__ for o in outcomes) == ["Allocation", "DuplicateTaskError"]
        await orchestra.wait_idle()
        # Finished and even retired to the history, the id stays taken.
        with pytest.raises(DuplicateTaskError, match="t001"):
            await orchestra.orchestrate_task(_task(1))
        assert orchestra.state()["metrics"]["tasks_submitted"] == 1


async def test_seed_examples_register_then_monitor_and_collaborate(config: dict[str, Any], fixed_clock: Any) -> None:
    async with StellarOrchestra(config, clock=fixed_clock) as orchestra:
        for agent in AGENTS:
            await orchestra.register_agent(agent)
        monitor = orchestra.start_agent_health_monitoring("atlas-001", check_interval_seconds=3600)
        assert monitor is not None
        record = await orchestra.orchestrate_collaboration(TEAM, GOAL)
        await orchestra.stop_health_monitoring()
    assert record["status"] == "succeeded"


async def test_an_urgent_task_starts_while_another_agent_is_busy(config: dict[str, Any]) -> None:
    called: dict[str, float] = {}
    slow_started = asyncio.Event()

    async def call(messages: list[Any]) -> Any:
        task_id = re.search(r"Task (\S+) \(", str(messages[-1].content)).group(1)  # type: ignore[union-attr]
        called[task_id] = time.perf_counter()
        if task_id == "slow":
            slow_started.set()
        await asyncio.sleep(5.0 if task_id == "slow" else 0.0)
        return structured(AgentAnswer(result=f"did {task_id}", criteria_met=[], confidence=1.0))

    model = ScriptedChatModel(responses=[call, call])
    async with StellarOrchestra(config, model=model) as orchestra:
        await orchestra.register_agent(EDISON.default_profile("edison-001", capacity=1))
        await orchestra.register_agent(PYTHAGORAS.default_profile("pythagoras-001", capacity=1))
        await orchestra.orchestrate_task({"id": "slow", "description": "Build", "required_skills": ["engineering"]})
        await slow_started.wait()
        submitted = time.perf_counter()
        placed = await orchestra.orchestrate_task(
            {"id": "urgent", "description": "Compute", "priority": "critical", "required_skills": ["statistics"]}
        )
        allocated = time.perf_counter() - submitted
        done = await orchestra.monitor_task_execution(placed.allocation_id)
        started = called["urgent"] - submitted
        await orchestra.stop_intake(cancel_current=True)  # the slow call is not waited for
    # Seconds before the slow call could end: the urgent task neither waited for it to be placed
    # nor to run (the first build allocated it only after the slow task's wave: 5.6 s).
    assert placed.agent_id == "pythagoras-001" and done["status"] == "completed"
    assert allocated < 1.0 and started < 1.0, (allocated, started)


async def test_a_control_run_that_raises_does_not_block_the_thread(
    config: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in a node (here: intake's health step raising once) fails that call only: the input
    it carried is cleared, so the next calls, and a restart, run normally (issue 14: one bad input
    answered 500 to every later request on its thread, across restarts)."""
    import stellar_graph.nodes.intake as intake

    real, calls = intake.health_update, []

    def broken_once(*args: Any) -> dict[str, Any]:
        calls.append(args)
        if len(calls) == 1:
            raise RuntimeError("a bug in a node")
        return real(*args)

    monkeypatch.setattr(intake, "health_update", broken_once)
    async with StellarOrchestra(config, thread_id="bug") as orchestra:
        with pytest.raises(RuntimeError, match="a bug in a node"):
            await orchestra.register_agent(PYTHAGORAS.default_profile("pythagoras-001"))
        await orchestra.register_agent(PYTHAGORAS.default_profile("pythagoras-002"))
        assert set(orchestra.registered_agents()) == {"pythagoras-002"}  # the failed call changed nothing
        await orchestra.register_agent(PYTHAGORAS.default_profile("pythagoras-001"))  # and can be retried
    monkeypatch.setattr(intake, "health_update", real)
    if config:  # memory: nothing outlives the orchestra
        return
    async with StellarOrchestra(config, thread_id="bug") as orchestra:  # a restart replays nothing
        await orchestra.orchestrate_task(_task(1, "statistics"))
        await orchestra.wait_idle()
        assert orchestra.state()["tasks"]["t001"]["status"] == "completed"
        assert set(orchestra.registered_agents()) == {"pythagoras-001", "pythagoras-002"}


async def test_one_short_task_on_idle_agents_is_not_a_workload_imbalance(config: dict[str, Any]) -> None:
    """Issue 14: `workload_imbalance` fired for a single 5-minute task on idle agents (ratio 3-5)."""
    async with StellarOrchestra(config) as orchestra:
        seen: list[dict[str, Any]] = []
        orchestra.on("*", seen.append)
        for i in range(5):
            await orchestra.register_agent(EDISON.default_profile(f"edison-{i:03d}"))
        await orchestra.orchestrate_task({**_task(1), "estimated_duration_minutes": 5})
        await orchestra.wait_idle()
        assert "workload_imbalance" not in [e["type"] for e in seen]
        assert orchestra.state()["imbalance"]["active"] is False


async def test_agent_errors_on_different_slots_add_up_to_an_agent_failure(config: dict[str, Any]) -> None:
    """Issue 14: `agent_failure` never fired when an agent's errors landed on different slots."""
    down = ConnectionError("model endpoint down")
    settings = {**config, "emergency_protocols": {"recovery_strategies": ["retry"], "retry_initial_interval_seconds": 0.01}}
    async with StellarOrchestra(settings, model=ScriptedChatModel(responses=[down] * 9)) as orchestra:
        seen: list[dict[str, Any]] = []
        orchestra.on("agent_failure", seen.append)
        await orchestra.register_agent(PYTHAGORAS.default_profile("pythagoras-001", capacity=3))
        await orchestra.orchestrate_multiple_tasks([_task(i, "statistics") for i in range(3)])  # one per slot
        await orchestra.wait_idle()
        assert [e["agent_id"] for e in seen] == ["pythagoras-001"]
        assert orchestra.get_agent("pythagoras-001")["healthy"] is False
