"""A task through the compiled orchestra to an agent subgraph whose real ChatOpenAI talks HTTP (respx)."""

from __future__ import annotations

import json

import httpx
import pytest
import respx
from langgraph.checkpoint.memory import InMemorySaver

from stellar_graph import create_orchestra
from stellar_graph.agents.spec import ATLAS, PYTHAGORAS
from stellar_graph.prompts import prompts_dir
from stellar_graph.testing import make_test_chat_openai, run_orchestra, structured_completion

BASE = "http://llm.mock/v1"
THREAD = "t-openai"
CFG = {"configurable": {"thread_id": THREAD}}
# Retry fast and stop at reassign (no fallback): the failure itself is what these tests look at.
NO_FALLBACK = {"emergency_protocols": {"recovery_strategies": ["retry", "reassign"], "retry_initial_interval_seconds": 0.01}}

TASK = {
    "id": "proof-1",
    "description": "Prove that the sum of two even numbers is even.",
    "priority": "high",
    "required_skills": ["mathematics"],
    "success_criteria": ["rigorous proof"],
}
AGENTS = [
    ATLAS.default_profile("atlas-001"),
    PYTHAGORAS.default_profile("pythagoras-001"),
]


@respx.mock(base_url=BASE, assert_all_called=True)
async def test_task_runs_through_real_chat_openai(
    respx_mock: respx.MockRouter, fixed_clock
) -> None:
    answer = {
        "result": "Let a=2m, b=2n; a+b=2(m+n).",
        "criteria_met": ["rigorous proof"],
        "confidence": 0.97,
    }
    route = respx_mock.post("/chat/completions").mock(
        return_value=httpx.Response(
            200, json=structured_completion(answer, prompt_tokens=321, completion_tokens=45)
        )
    )
    model = make_test_chat_openai(BASE, model="gpt-4o-mini")
    saver = InMemorySaver()
    out = await run_orchestra({"register_agents": AGENTS, "submit_tasks": [TASK]}, model=model, clock=fixed_clock, checkpointer=saver, thread_id=THREAD)

    # The request: the agent's model, its system prompt from prompts/, the task text, structured output.
    assert route.call_count == 1
    body = json.loads(route.calls.last.request.content)
    assert body["model"] == "gpt-4o-mini"
    system, user = body["messages"][0], body["messages"][1]
    assert system["role"] == "system" and user["role"] == "user"
    prompt_file = (prompts_dir() / "pythagoras.md").read_text()
    assert "the\nteam's mathematician, data analyst and algorithm designer" in prompt_file
    assert "You are Pythagoras (instance pythagoras-001)" in system["content"]
    assert "team's mathematician, data analyst and algorithm designer" in system["content"]
    assert TASK["description"] in user["content"] and "- rigorous proof" in user["content"]
    assert body["response_format"] == {"type": "json_object"}  # the shape is in the task message
    assert '{"result": "<your work>"' in user["content"]

    # The result, the allocation and the usage in state.
    task = out["tasks"]["proof-1"]
    assert task["status"] == "completed"
    assert task["agent_id"] == "pythagoras-001"
    assert task["result"] == answer["result"]
    assert task["report"]["simulated"] is False
    assert task["report"]["usage"] == {"input_tokens": 321, "output_tokens": 45}
    allocation = out["allocations"]["alloc-proof-1"]
    assert allocation["status"] == "completed"
    assert allocation["breakdown"]["skills"] == 1.0
    assert allocation["estimated_prompt_tokens"] > 100
    assert out["metrics"]["input_tokens"] == 321


@respx.mock(base_url=BASE)
async def test_garbage_llm_reply_fails_the_task_with_a_clear_error(
    respx_mock: respx.MockRouter, fixed_clock
) -> None:
    respx_mock.post("/chat/completions").mock(
        return_value=httpx.Response(200, json=structured_completion({"nonsense": True}))
    )
    saver = InMemorySaver()
    out = await run_orchestra(
        {"register_agents": AGENTS, "submit_tasks": [TASK]}, NO_FALLBACK, model=make_test_chat_openai(BASE),
        clock=fixed_clock, checkpointer=saver, thread_id=THREAD,
    )
    task = out["tasks"]["proof-1"]
    assert task["status"] == "failed"
    assert "ModelBehaviorError" in task["error"]
    assert "pythagoras-001" in task["error"] and "not a valid AgentAnswer" in task["error"]
    # The registry and the board are intact: the agent is still there and healthy.
    state = await create_orchestra().compile(checkpointer=saver).aget_state(CFG)
    assert set(state.values["agents"]) == {"atlas-001", "pythagoras-001"}


@respx.mock(base_url=BASE)
async def test_a_reply_of_another_shape_gets_one_repair_call_then_counts(
    respx_mock: respx.MockRouter, fixed_clock
) -> None:
    """Issue 14: valid JSON of another shape (`{"message": ...}`) failed every task at once."""
    good = {"result": "Let a=2m, b=2n; a+b=2(m+n).", "criteria_met": ["rigorous proof"], "confidence": 0.9}
    route = respx_mock.post("/chat/completions").mock(side_effect=[
        httpx.Response(200, json=structured_completion({"message": "here is my proof"}, prompt_tokens=100, completion_tokens=10)),
        httpx.Response(200, json=structured_completion(good, prompt_tokens=150, completion_tokens=20)),
    ])
    out = await run_orchestra(
        {"register_agents": AGENTS, "submit_tasks": [TASK]}, NO_FALLBACK, model=make_test_chat_openai(BASE),
        clock=fixed_clock, checkpointer=InMemorySaver(), thread_id=THREAD,
    )
    assert out["tasks"]["proof-1"]["status"] == "completed" and route.call_count == 2
    repair = json.loads(route.calls[1].request.content)["messages"]
    assert repair[-2] == {"role": "assistant", "content": json.dumps({"message": "here is my proof"})}
    assert "JSON schema" in repair[-1]["content"] and "criteria_met" in repair[-1]["content"]
    assert out["metrics"]["repair_calls"] == 1
    assert out["metrics"]["input_tokens"] == 250 and out["metrics"]["output_tokens"] == 30  # both calls counted


@respx.mock(base_url=BASE)
async def test_http_500_is_a_recorded_failure_not_a_crash(
    respx_mock: respx.MockRouter, fixed_clock
) -> None:
    respx_mock.post("/chat/completions").mock(
        return_value=httpx.Response(500, json={"error": {"message": "boom"}})
    )
    saver = InMemorySaver()
    out = await run_orchestra(
        {"register_agents": AGENTS, "submit_tasks": [TASK]}, NO_FALLBACK, model=make_test_chat_openai(BASE),
        clock=fixed_clock, checkpointer=saver, thread_id=THREAD,
    )
    assert out["tasks"]["proof-1"]["status"] == "failed"
    assert "500" in out["tasks"]["proof-1"]["error"] or "Error" in out["tasks"]["proof-1"]["error"]


@pytest.mark.parametrize("spec", [ATLAS, PYTHAGORAS])
def test_agent_prompt_names_the_instance(spec) -> None:
    from stellar_graph.agents.render import render_system_prompt

    text = render_system_prompt(spec, spec.default_profile(f"{spec.name}-007"))
    assert f"instance {spec.name}-007" in text and spec.display_name in text
