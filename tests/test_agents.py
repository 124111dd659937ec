"""The agent factory: tool rounds, structured answers, success-criteria checks, simulation."""

from __future__ import annotations

from dataclasses import replace

from langchain_core.messages import AIMessage
from langchain_core.tools import tool

from stellar_graph import ATLAS, PYTHAGORAS, AgentAnswer, create_agent
from stellar_graph.simulation import simulate_work
from stellar_graph.testing import ScriptedChatModel, structured

TASK = {"id": "t1", "description": "Compute the mean of 2 and 4", "required_skills": ["statistics"],
        "success_criteria": ["exact mean"], "priority": "high", "deadline": None}


@tool
def mean(values: list[float]) -> float:
    """Arithmetic mean."""
    return sum(values) / len(values)


async def test_agent_uses_its_tools_then_answers() -> None:
    spec = replace(PYTHAGORAS, tools=(mean,))
    model = ScriptedChatModel(responses=[
        AIMessage(content="", tool_calls=[{"name": "mean", "args": {"values": [2, 4]}, "id": "c1"}]),
        AIMessage(content="The mean is 3."),
        structured(AgentAnswer(result="3.0", criteria_met=["exact mean"], confidence=0.99)),
    ])
    out = await create_agent(spec, model=model).compile().ainvoke({"task": TASK, "agent": spec.default_profile("p-1")})
    report = out["report"]
    assert report["status"] == "completed" and report["result"] == "3.0"
    assert model.call_tools[0] == ["mean"]
    tool_message = model.calls[1][-1]
    assert tool_message.type == "tool" and tool_message.content == "3.0"
    assert report["usage"]["input_tokens"] > 0
    model.assert_complete()


async def test_unmet_success_criteria_fail_the_check() -> None:
    model = ScriptedChatModel(responses=[structured(AgentAnswer(result="about 3", criteria_met=[], confidence=0.4))])
    out = await create_agent(ATLAS, model=model).compile().ainvoke({"task": TASK, "agent": ATLAS.default_profile("a-1")})
    assert out["report"]["status"] == "failed"
    assert out["report"]["error"] == "success criteria not met: ['exact mean']"


async def test_simulated_agent_says_so_and_is_reproducible() -> None:
    graph = create_agent(PYTHAGORAS, model=None, seed=7).compile()
    agent = PYTHAGORAS.default_profile("p-1")
    first = (await graph.ainvoke({"task": TASK, "agent": agent}))["report"]
    second = (await graph.ainvoke({"task": TASK, "agent": agent}))["report"]
    assert first["simulated"] is True and first["result"].startswith("[simulated]")
    assert (first["status"], first["duration_minutes"]) == (second["status"], second["duration_minutes"])


def test_simulation_follows_the_profile() -> None:
    task = {**TASK, "estimated_duration_minutes": 60}
    strong = {**PYTHAGORAS.default_profile("p"), "reliability": 0.95, "speed": 2.0}
    weak = {**ATLAS.default_profile("a"), "capabilities": ["statistics"], "reliability": 0.3}
    runs = 400
    strong_ok = sum(simulate_work(task, strong, attempt=i).success for i in range(runs)) / runs
    weak_ok = sum(simulate_work(task, weak, attempt=i).success for i in range(runs)) / runs
    assert 0.90 <= strong_ok <= 0.99 and 0.22 <= weak_ok <= 0.38
    durations = sorted(simulate_work(task, strong, attempt=i).duration_minutes for i in range(runs))
    assert 30 <= durations[runs // 2] <= 36  # 60 min / speed 2, median noise +10%
