"""Bad inputs get a clear error (field, value, fix) and leave already-accepted work intact."""

from __future__ import annotations

from typing import Any

import pytest

from stellar_graph import (
    ATLAS,
    PYTHAGORAS,
    ConfigurationError,
    DuplicateAgentError,
    InvalidInputError,
    OrchestraConfig,
    StellarOrchestra,
    UnknownAgentError,
)

MEMORY = {"persistence": {"backend": "memory"}}
GOOD = {"id": "good-1", "description": "Analyse the data", "required_skills": ["data_analysis"]}


@pytest.fixture
async def orchestra(fixed_clock):
    async with StellarOrchestra(MEMORY, clock=fixed_clock) as orch:
        await orch.register_agent(PYTHAGORAS.default_profile("pythagoras-001"))
        allocation = await orch.orchestrate_task(GOOD)
        assert allocation.agent_id == "pythagoras-001"
        await orch.wait_idle()
        yield orch


def _snapshot(orch: StellarOrchestra) -> dict[str, Any]:
    state = orch.state()
    return {"agents": state["agents"], "tasks": state["tasks"], "allocations": state["allocations"]}


async def _rejects(orch: StellarOrchestra, exc_type: type[Exception], call, *needles: str) -> str:
    before = _snapshot(orch)
    with pytest.raises(exc_type) as info:
        await call()
    message = str(info.value)
    for needle in needles:
        assert needle in message, message
    assert "Fix" in message or "fix" in message or "Input should be" in message or "allowed" in message
    await orch.wait_idle()
    assert _snapshot(orch) == before  # nothing accepted was lost or changed
    return message


async def test_unknown_agent_id(orchestra: StellarOrchestra) -> None:
    with pytest.raises(UnknownAgentError, match=r"Unknown agent id 'ghost-001'.*'pythagoras-001'.*register"):
        orchestra.get_agent("ghost-001")
    bad = {**GOOD, "id": "t2", "preferred_agents": ["ghost-001"]}
    await _rejects(orchestra, InvalidInputError, lambda: orchestra.orchestrate_task(bad),
                   "preferred_agents", "ghost-001", "unknown agent")


async def test_unknown_agent_type(orchestra: StellarOrchestra) -> None:
    await _rejects(orchestra, UnknownAgentError,
                   lambda: orchestra.register_agent({"agent_id": "x-001", "agent_type": "WizardAgent", "capabilities": ["magic"]}),
                   "WizardAgent", "AtlasAgent")


async def test_duplicate_agent_id(orchestra: StellarOrchestra) -> None:
    msg = await _rejects(orchestra, DuplicateAgentError,
                         lambda: orchestra.register_agent(PYTHAGORAS.default_profile("pythagoras-001")),
                         "pythagoras-001", "already registered")
    assert "pythagoras-002" in msg  # the fix suggests a free id


async def test_empty_skills(orchestra: StellarOrchestra) -> None:
    await _rejects(orchestra, InvalidInputError, lambda: orchestra.orchestrate_task({**GOOD, "id": "t3", "required_skills": []}),
                   "`required_skills`=[]", "at least 1")
    await _rejects(orchestra, InvalidInputError,
                   lambda: orchestra.register_agent({"agent_id": "atlas-009", "agent_type": "AtlasAgent"}),
                   "at least one capability")


async def test_negative_duration(orchestra: StellarOrchestra) -> None:
    await _rejects(orchestra, InvalidInputError,
                   lambda: orchestra.orchestrate_task({**GOOD, "id": "t4", "estimated_duration_minutes": -5}),
                   "`estimated_duration_minutes`=-5", "greater than 0")


async def test_priority_out_of_range(orchestra: StellarOrchestra) -> None:
    await _rejects(orchestra, InvalidInputError,
                   lambda: orchestra.orchestrate_task({**GOOD, "id": "t5", "priority": "urgent"}),
                   "`priority`='urgent'", "'low', 'medium', 'high' or 'critical'")


async def test_a_bad_task_rejects_its_whole_batch(orchestra: StellarOrchestra) -> None:
    batch = [{**GOOD, "id": "ok-2"}, {**GOOD, "id": "bad-2", "priority": 7}]
    await _rejects(orchestra, InvalidInputError, lambda: orchestra.orchestrate_multiple_tasks(batch), "bad-2", "priority")
    assert "ok-2" not in orchestra.state()["tasks"]


async def test_duplicate_task_id_and_unknown_dependency_and_cycle(orchestra: StellarOrchestra) -> None:
    await _rejects(orchestra, InvalidInputError, lambda: orchestra.orchestrate_task(GOOD), "good-1", "already on the board")
    await _rejects(orchestra, InvalidInputError,
                   lambda: orchestra.orchestrate_task({**GOOD, "id": "t6", "dependencies": ["nope"]}), "nope", "unknown task")
    cycle = [{**GOOD, "id": "a", "dependencies": ["b"]}, {**GOOD, "id": "b", "dependencies": ["a"]}]
    await _rejects(orchestra, InvalidInputError, lambda: orchestra.orchestrate_multiple_tasks(cycle), "cycle", "a -> b -> a")


def test_unknown_config_key_and_bad_values() -> None:
    with pytest.raises(ConfigurationError) as info:
        OrchestraConfig.from_dict({"task_allocation": {"stratgy": "optimal"}})
    assert "`task_allocation.stratgy`" in str(info.value) and "strategy" in str(info.value)
    assert info.value.field == "task_allocation.stratgy"
    with pytest.raises(ConfigurationError, match=r"`orchestration_mode` = 'turbo'.*'static', 'dynamic' or 'adaptive'"):
        OrchestraConfig.from_dict({"orchestration_mode": "turbo"})
    with pytest.raises(ConfigurationError, match=r"sum to 1"):
        OrchestraConfig.from_dict({"task_allocation": {"weights": {"skills": 1.0, "workload": 0.5}}})
    with pytest.raises(ConfigurationError, match=r"`messaging.priority_queue_size` = 0"):
        StellarOrchestra({"messaging": {"priority_queue_size": 0}})


def test_config_from_yaml_and_toml_files(tmp_path) -> None:
    (tmp_path / "c.yaml").write_text("task_allocation:\n  strategy: greedy\norchestration_mode: static\n")
    (tmp_path / "c.toml").write_text('[collaboration]\nnegotiation_rounds_limit = 3\n')
    (tmp_path / "bad.toml").write_text('[collaboration]\nrounds = 3\n')
    assert OrchestraConfig.from_file(tmp_path / "c.yaml").task_allocation.strategy == "greedy"
    assert OrchestraConfig.load(str(tmp_path / "c.toml")).collaboration.negotiation_rounds_limit == 3
    with pytest.raises(ConfigurationError, match=r"unknown key `collaboration.rounds`"):
        OrchestraConfig.from_file(tmp_path / "bad.toml")


async def test_calls_before_start_explain_the_fix() -> None:
    orch = StellarOrchestra(MEMORY)
    with pytest.raises(Exception, match="start_orchestration"):
        await orch.register_agent(ATLAS.default_profile("atlas-001"))
