"""Dependencies through the graph: chains and diamonds run in order; failures fail or hold dependents."""

from __future__ import annotations

import pytest

from stellar_graph import EDISON, ConfigurationError, StellarOrchestra
from stellar_graph.testing import ScriptedChatModel

MEMORY = {"persistence": {"backend": "memory"}}


def _task(tid: str, *deps: str) -> dict:
    return {"id": tid, "description": f"step {tid}", "required_skills": ["engineering"], "dependencies": list(deps)}


async def _run(tasks: list[dict], config: dict | None = None, **kw) -> dict:
    async with StellarOrchestra({**MEMORY, **(config or {})}, **kw) as orchestra:
        await orchestra.register_agent(EDISON.default_profile("edison-001", capacity=4, reliability=1.0))
        await orchestra.register_agent(EDISON.default_profile("edison-002", capacity=4, reliability=1.0))
        await orchestra.orchestrate_multiple_tasks(tasks)
        await orchestra.wait_idle()
        return dict(orchestra.state()["tasks"])


async def test_chain_and_diamond_run_in_dependency_order() -> None:
    tasks = await _run([
        _task("c1"), _task("c2", "c1"), _task("c3", "c2"),                        # chain
        _task("top"), _task("left", "top"), _task("right", "top"), _task("bottom", "left", "right"),  # diamond
    ])
    assert {t: r["status"] for t, r in tasks.items()} == dict.fromkeys(tasks, "completed")
    for tid, record in tasks.items():
        for dep in record["dependencies"]:
            assert record["started_at"] >= tasks[dep]["finished_at"], (tid, dep)
    # Independent work ran side by side: each chain's head started in the control run that
    # allocated both, and each dependent started as soon as its own dependencies were done.
    assert tasks["c1"]["allocated_at"] == tasks["top"]["allocated_at"]


async def test_a_failed_dependency_fails_or_holds_its_dependents() -> None:
    boom = RuntimeError("agent crashed")
    no_reassign = {"emergency_protocols": {"recovery_strategies": ["retry"]}}
    model = ScriptedChatModel(responses=[boom])
    failed = await _run([_task("base"), _task("next", "base")], no_reassign, model=model)
    assert failed["base"]["status"] == "failed" and "agent crashed" in failed["base"]["error"]
    assert failed["next"] == {**failed["next"], "status": "failed", "error": "dependency 'base' failed"}

    held = await _run([_task("base"), _task("next", "base")],
                      {**no_reassign, "task_allocation": {"dependency_failure": "hold"}},
                      model=ScriptedChatModel(responses=[boom]))
    assert held["next"]["status"] == "held" and held["next"]["error"] == "dependency 'base' failed"


async def test_a_degraded_dependency_fails_its_dependents_with_the_reason() -> None:
    """Issue 14: dependents of a degraded task stayed `pending` forever, with no reason."""
    boom = RuntimeError("agent crashed")
    fallback = {"emergency_protocols": {"recovery_strategies": ["retry", "fallback"]}}
    tasks = await _run([_task("base"), _task("next", "base")], fallback, model=ScriptedChatModel(responses=[boom]))
    assert tasks["base"]["status"] == "degraded"
    assert tasks["next"]["status"] == "failed" and tasks["next"]["error"] == "dependency 'base' degraded"


async def test_batch_strategy_override_is_validated() -> None:
    async with StellarOrchestra(MEMORY) as orchestra:
        await orchestra.register_agent(EDISON.default_profile("edison-001"))
        with pytest.raises(ConfigurationError, match=r"Unknown allocation strategy 'magic'.*'greedy'"):
            await orchestra.task_allocator.allocate_batch([_task("x")], strategy="magic")
        [allocation] = await orchestra.task_allocator.allocate_batch([_task("x")], strategy="greedy")
        assert allocation.agent_id == "edison-001"
        await orchestra.wait_idle()
        assert orchestra.state().get("allocation_strategy") is None  # the override lasted one run
