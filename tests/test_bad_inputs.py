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


@pytest.mark.parametrize("amount", [float("nan"), float("inf"), -1.0])
async def test_resource_amounts_must_be_finite_and_non_negative(orchestra: StellarOrchestra, amount: float) -> None:
    """A task needing `gpu: NaN` went to an agent without a GPU (NaN passes every comparison)."""
    task = {**GOOD, "id": "gpu-1", "resources": {"gpu": amount}}
    await _rejects(orchestra, InvalidInputError, lambda: orchestra.orchestrate_task(task), "`resources`", "gpu", "finite")
    agent = {**PYTHAGORAS.default_profile("pythagoras-009"), "resources": {"gpu": amount}}
    await _rejects(orchestra, InvalidInputError, lambda: orchestra.register_agent(agent), "`resources`", "finite")


@pytest.mark.parametrize("bad", [None, "str", 5])
async def test_orchestrate_task_refuses_a_non_task(orchestra: StellarOrchestra, bad: Any) -> None:
    await _rejects(orchestra, InvalidInputError, lambda: orchestra.orchestrate_task(bad), repr(bad), "Fix")


@pytest.mark.parametrize("bad", [None, {"id": "x"}, "str", {1, 2}])
async def test_orchestrate_multiple_tasks_refuses_a_non_list(orchestra: StellarOrchestra, bad: Any) -> None:
    await _rejects(orchestra, InvalidInputError, lambda: orchestra.orchestrate_multiple_tasks(bad), "list", "Fix")


async def test_a_huge_token_budget_is_refused_before_it_reaches_a_checkpoint(orchestra: StellarOrchestra) -> None:
    task = {**GOOD, "id": "big-1", "token_budget": 10**30}
    await _rejects(orchestra, InvalidInputError, lambda: orchestra.orchestrate_task(task), "`token_budget`")


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ([1], "must be a mapping"),
        ("abc", "must be a mapping"),
        ({"task_allocation": {"weights": {"skills": 0.4, "resources": 0.1, "workload": 0.2, "deadline": 0.3,
                                          "collaboration": float("nan")}}}, "`task_allocation.weights`"),
        ({"learning_parameters": {"experience_replay_buffer_size": 10**30}}, "`learning_parameters.experience_replay_buffer_size`"),
        ({"persistence": {"data_dir": "/dev/null"}}, "not a directory"),
        ({"persistence": {"data_dir": " "}}, "`persistence.data_dir`"),
    ],
)
def test_config_values_that_would_fail_at_the_first_run_are_refused_up_front(data: Any, needle: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        OrchestraConfig.from_dict(data)
    assert needle in str(caught.value) and "Fix" in str(caught.value), str(caught.value)


@pytest.mark.parametrize(("name", "needle"), [("monitor", "already have a node"), ("begin", "already have a node"),
                                              ("my agent", "letters, digits"), ("", "letters, digits")])
def test_agent_type_names_are_checked_against_the_graphs_node_names(name: str, needle: str) -> None:
    from stellar_graph import AgentSpec

    with pytest.raises(ConfigurationError) as caught:
        AgentSpec(name=name, agent_type="CartographerAgent", display_name="Cartographer", prompt="atlas",
                  capabilities=("maps",), specializations=())
    assert needle in str(caught.value) and "Fix" in str(caught.value) and repr(name) in str(caught.value)


def test_list_fields_also_take_comma_separated_text_and_an_empty_one_is_still_refused() -> None:
    """Forms and command lines have no list: ``"statistics, ml"`` is two skills."""
    from stellar_graph.errors import InvalidInputError
    from stellar_graph.models import AgentProfile, Task, parse_model

    task = parse_model(Task, {"id": "t", "description": "d", "required_skills": "statistics, ml", "dependencies": "a,b"}, kind="task")
    assert (task.required_skills, task.dependencies) == (["statistics", "ml"], ["a", "b"])
    agent = parse_model(AgentProfile, {"agent_id": "a", "agent_type": "AtlasAgent", "capabilities": "ethics"}, kind="agent")
    assert agent.capabilities == ["ethics"]
    with pytest.raises(InvalidInputError, match="required_skills"):
        parse_model(Task, {"id": "t", "description": "d", "required_skills": " , "}, kind="task")
