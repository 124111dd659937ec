"""Diagnostics: node and agent time shares, the health check's components, the diagnosis."""

from __future__ import annotations

import asyncio
from typing import Any

from stellar_graph import ATLAS, EDISON, AgentAnswer, StellarOrchestra
from stellar_graph.ops import OperationsMixin
from stellar_graph.ops.diagnostics import (
    agent_timings,
    bottleneck_report,
    overall_status,
    top_shares,
)
from stellar_graph.testing import ScriptedChatModel, structured

Orchestra = (
    StellarOrchestra
    if issubclass(StellarOrchestra, OperationsMixin)
    else type("Orchestra", (OperationsMixin, StellarOrchestra), {})
)
MEMORY = {"persistence": {"backend": "memory"}}
NO_RETRY = {**MEMORY, "emergency_protocols": {"recovery_strategies": ["reassign"]}}


def test_shares_rank_the_slowest_first_and_status_takes_the_worst() -> None:
    timings = {
        "intake": {"seconds": 1.5, "steps": 2},
        "allocator": {"seconds": 1.0, "steps": 1},
        "atlas": {"seconds": 4.0, "steps": 1},
        "edison": {"seconds": 4.0, "steps": 1},
    }
    ranked = top_shares(timings, "node", count="steps", top=2)
    assert ranked["total_seconds"] == 10.5
    assert ranked["top"] == [
        {"node": "atlas", "seconds": 4.0, "steps": 1, "share": 0.381, "mean_seconds": 4.0},
        {"node": "edison", "seconds": 4.0, "steps": 1, "share": 0.381, "mean_seconds": 4.0},
    ]
    assert overall_status(["ok", "degraded", "ok"]) == "degraded"
    assert overall_status(["ok", "down", "degraded"]) == "down"


def test_findings_name_a_dominant_agent_or_orchestration_node() -> None:
    agents = top_shares(
        {"a": {"seconds": 8.0, "tasks": 2}, "b": {"seconds": 2.0, "tasks": 2}},
        "agent_id",
        count="tasks",
        top=5,
    )
    nodes = top_shares(
        {"allocator": {"seconds": 6.0, "steps": 3}, "atlas": {"seconds": 4.0, "steps": 1}},
        "node",
        count="steps",
        top=5,
    )
    assert bottleneck_report(nodes, agents, agent_count=2) == [
        "agent a took 80% of all agent time (2 agents): register another instance of its type or raise its capacity",
        "orchestration node allocator took 60% of step time: for large batches try `task_allocation.strategy: fast`, "
        "and prune the board (perform_system_maintenance)",
    ]
    even = top_shares(
        {"a": {"seconds": 5.0, "tasks": 2}, "b": {"seconds": 5.0, "tasks": 2}},
        "agent_id",
        count="tasks",
        top=5,
    )
    assert bottleneck_report({"top": []}, even, agent_count=2) == []


def test_agent_timings_add_pruned_summaries() -> None:
    board = {
        "t1": {
            "status": "completed",
            "agent_id": "a",
            "report": {"agent_id": "a", "wall_seconds": 3.0},
        },
        "t2": {
            "status": "failed",
            "agent_id": "a",
            "report": {"agent_id": "a", "wall_seconds": 1.0},
        },
        "t3": {"status": "refused"},
        "t4": {"status": "pending", "agent_id": "b"},
    }
    pruned = {
        "agents": {
            "a": {"tasks": 2, "failed": 0, "wall_seconds": 4.0},
            "b": {"tasks": 1, "failed": 1, "wall_seconds": 2.0},
        }
    }
    assert agent_timings(board, pruned) == {
        "a": {"seconds": 8.0, "tasks": 4, "failed": 1},
        "b": {"seconds": 2.0, "tasks": 1, "failed": 1},
    }


def _slow_for(agent: str, seconds: float):
    async def call(messages: list[Any]) -> Any:
        if f"instance {agent}" in messages[0].content:
            await asyncio.sleep(seconds)
        return structured(AgentAnswer(result="done", criteria_met=[], confidence=1.0))

    return call


async def test_bottlenecks_name_the_slow_agent_and_survive_maintenance(fixed_clock) -> None:
    model = ScriptedChatModel(responses=[_slow_for("atlas-001", 1.0)] * 8)  # clear of a loaded machine
    tasks = [
        {"id": f"e{i}", "description": "Build", "required_skills": ["engineering"]}
        for i in range(3)
    ]
    tasks += [{"id": "a0", "description": "Reflect", "required_skills": ["ethics"]}]
    async with Orchestra(MEMORY, model=model, clock=fixed_clock) as orchestra:
        await orchestra.register_agent(ATLAS.default_profile("atlas-001"))
        await orchestra.register_agent(EDISON.default_profile("edison-001"))
        await orchestra.orchestrate_multiple_tasks(tasks)
        await orchestra.wait_idle()
        before = await orchestra.analyze_performance_bottlenecks(top=3)
        control_nodes = set(orchestra.app.nodes)
        await orchestra.perform_system_maintenance(prune_finished_older_than=0)
        after = await orchestra.analyze_performance_bottlenecks(top=3)
    agents = before["agents"]["top"]
    assert [a["agent_id"] for a in agents] == [
        "atlas-001",
        "edison-001",
    ]  # one slow task outweighs three quick ones
    assert [a["tasks"] for a in agents] == [1, 3]
    assert agents[0]["share"] > 0.5 and abs(sum(a["share"] for a in agents) - 1) < 1e-3
    nodes = {n["node"]: n for n in before["nodes"]["top"]}
    # The control runs' nodes, timed as they ran (agent time is under "agents").
    assert len(nodes) == 3 and set(nodes) <= control_nodes
    assert before["steps_analyzed"] > 0
    # Pruned tasks and collected node timings are still counted after maintenance.
    assert [(a["agent_id"], a["tasks"]) for a in after["agents"]["top"]] == [
        ("atlas-001", 1),
        ("edison-001", 3),
    ]
    assert after["agents"]["total_seconds"] == before["agents"]["total_seconds"]
    assert after["steps_analyzed"] >= before["steps_analyzed"]


async def test_health_check_reports_each_component(fixed_clock) -> None:
    failing = ScriptedChatModel(responses=[ConnectionError("down")] * 2)
    async with Orchestra(NO_RETRY, model=failing, clock=fixed_clock) as orchestra:
        empty = await orchestra.perform_health_check()
        await orchestra.register_agent(EDISON.default_profile("edison-001", capacity=1))
        healthy = await orchestra.perform_health_check()
        await orchestra.orchestrate_multiple_tasks(
            [
                {"id": f"t{i}", "description": "Build", "required_skills": ["engineering"]}
                for i in range(2)
            ]
        )
        await orchestra.wait_idle()  # two agent errors in a row: the only agent is taken out
        down = await orchestra.perform_health_check()
    assert set(healthy["components"]) == {
        "persistence", "store", "worker", "agents", "bus", "event_handlers", "integrations", "monitoring",
    }  # fmt: skip
    assert empty["components"]["agents"]["status"] == "degraded"
    assert healthy["status"] == "ok"
    assert {c["status"] for c in healthy["components"].values()} == {"ok"}
    assert healthy["components"]["worker"]["worker_alive"] is True
    assert down["status"] == "down"
    assert down["components"]["agents"] == {
        "status": "down", "detail": "no healthy agent", "registered": 1, "unhealthy": ["edison-001"],
    }  # fmt: skip


async def test_system_diagnostics_cover_config_runtime_agents_storage_and_findings(
    fixed_clock,
) -> None:
    async with Orchestra(clock=fixed_clock) as orchestra:  # SQLite: files and checkpoint rows
        await orchestra.register_agent(EDISON.default_profile("edison-001"))
        await orchestra.orchestrate_multiple_tasks(
            [{"id": "t1", "description": "Build", "required_skills": ["engineering"]}]
        )
        await orchestra.wait_idle()
        monitor = orchestra.start_health_monitoring(
            3600, {"memory_usage": 0.0001, "cpu_usage": None, "error_rate": None}
        )
        await monitor.check()
        diagnosis = await orchestra.run_system_diagnostics()
        await orchestra.aclose_operations()
    assert diagnosis["config"]["persistence"] == {"backend": "sqlite", "durability": "exit"}
    assert diagnosis["config"]["model"] == "simulated"
    assert (
        diagnosis["runtime"]["maintenance_mode"] is False
        and diagnosis["runtime"]["intake_open"] is True
    )
    assert diagnosis["agents"]["edison-001"]["status"] == "healthy"
    assert diagnosis["metrics"]["tasks"]["submitted"] == 1
    assert set(diagnosis["storage"]["files"]) == {"checkpoints", "store", "bus"}
    assert diagnosis["storage"]["files"]["checkpoints"] > 0
    assert diagnosis["storage"]["checkpoints"]["checkpoints"] > 1
    assert diagnosis["monitoring"]["system"]["firing"] == ["memory_usage"]
    assert diagnosis["status"] == "degraded"
    assert diagnosis["findings"] == ["monitoring: alerts firing: ['memory_usage']"]
    assert diagnosis["bus"]["queue_depth"] == 0
