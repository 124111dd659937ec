"""The retry rung through the real ChatOpenAI: Retry-After is honoured, a hanging call is cut off."""

from __future__ import annotations

import asyncio
import time

import httpx
import respx

from stellar_graph import PYTHAGORAS
from stellar_graph.testing import (
    make_test_chat_openai,
    openai_error,
    run_orchestra,
    structured_completion,
)

BASE = "http://llm.mock/v1"
TASK = {"id": "t1", "description": "Compute", "required_skills": ["statistics"], "success_criteria": []}
ANSWER = structured_completion({"result": "42", "criteria_met": [], "confidence": 0.9})


async def _run(fixed_clock, payload, **protocols):
    config = {"emergency_protocols": {"retry_initial_interval_seconds": 0.01, **protocols}}
    return await run_orchestra(payload, config, model=make_test_chat_openai(BASE), clock=fixed_clock)


@respx.mock(base_url=BASE)
async def test_rate_limit_with_retry_after_is_waited_out_then_retried(respx_mock, fixed_clock) -> None:
    stamps: list[float] = []

    def reply(request: httpx.Request) -> httpx.Response:
        stamps.append(time.monotonic())
        return openai_error(429, "slow down", retry_after=0.3) if len(stamps) == 1 else httpx.Response(200, json=ANSWER)

    respx_mock.post("/chat/completions").mock(side_effect=reply)
    out = await _run(
        fixed_clock, {"register_agents": [PYTHAGORAS.default_profile("p-1")], "submit_tasks": [TASK]},
    )
    assert out["tasks"]["t1"]["status"] == "completed"
    assert len(stamps) == 2 and stamps[1] - stamps[0] >= 0.3  # waited as the provider asked


@respx.mock(base_url=BASE, assert_all_called=False)  # cancelled calls never complete in respx's log
async def test_an_agent_that_never_answers_is_cut_off_and_enters_the_ladder(respx_mock, fixed_clock) -> None:
    calls = 0

    async def hang(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        await asyncio.sleep(30)
        return httpx.Response(200, json=ANSWER)

    respx_mock.post("/chat/completions").mock(side_effect=hang)
    started = time.monotonic()
    out = await _run(
        fixed_clock, {"register_agents": [PYTHAGORAS.default_profile("p-1")], "submit_tasks": [TASK]}, agent_timeout_seconds=0.2, retry_max_attempts=2,
    )
    task = out["tasks"]["t1"]
    # No other agent can take it and no fallback agent is configured: a degraded result says so.
    assert task["status"] == "degraded" and "NodeTimeoutError" in task["error"]
    assert task["result"].startswith("DEGRADED: no agent could complete task 't1'")
    assert calls == 2  # the retry budget, not one call more
    assert time.monotonic() - started < 10  # nowhere near the 30 s the endpoint would take
