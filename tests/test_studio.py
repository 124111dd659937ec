"""`langgraph dev` loads `langgraph.json` offline and runs the orchestra through the LangGraph SDK.

The dev server (the API that LangGraph Studio talks to) starts from the repository root on a
free port, with analytics and the version check off and no reloader; agents are simulated.
The served orchestra reads its config from ``STELLAR_GRAPH_CONFIG``; here the recovery ladder
ends in escalation, so a failed task interrupts the run until a ``Command`` resumes it.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stellar_graph import LILITH, PYTHAGORAS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

import bench_server

pytestmark = pytest.mark.slow

ROOT = bench_server.ROOT


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`langgraph dev` on a free port (``tools/bench_server.dev_server``); yields its URL."""
    if not bench_server.LANGGRAPH.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{bench_server.LANGGRAPH} is missing: install the `studio` extra")
        pytest.skip("langgraph-cli is not installed (the `studio` extra)")
    config = tmp_path_factory.mktemp("config") / "orchestra.yaml"
    config.write_text("emergency_protocols:\n  recovery_strategies: [retry, reassign, escalate]\n")
    log = tmp_path_factory.mktemp("studio") / "dev.log"
    with bench_server.dev_server(1, config=config, log=log) as url:  # `langgraph dev`'s real default
        yield url


async def _until(client: Any, thread_id: str, done: Any, seconds: float = 60.0) -> dict[str, Any]:
    """The thread's state once ``done(state)`` holds (task runs report back as control runs)."""
    deadline = time.monotonic() + seconds
    while True:
        state = await client.threads.get_state(thread_id)
        if done(state):
            return state  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, state
        await asyncio.sleep(0.2)


def _statuses(state: dict[str, Any]) -> dict[str, str]:
    return {t: r["status"] for t, r in (state["values"].get("tasks") or {}).items()}


async def test_every_graph_in_langgraph_json_is_served(dev_server: str) -> None:
    from langgraph_sdk import get_client

    async with get_client(url=dev_server) as client:
        graphs = {a["graph_id"] for a in await client.assistants.search(limit=50)}
    assert graphs == set(json.loads((ROOT / "langgraph.json").read_text())["graphs"])


async def test_orchestra_run_on_a_thread_then_its_state_holds_allocation_and_result(
    dev_server: str,
) -> None:
    from langgraph_sdk import get_client

    async with get_client(url=dev_server) as client:
        thread = await client.threads.create()
        out = await client.runs.wait(
            thread["thread_id"],
            "orchestra",
            input={
                "register_agents": [
                    LILITH.default_profile("lilith-001"),
                    PYTHAGORAS.default_profile("pythagoras-001"),
                ],
                "submit_tasks": [
                    {
                        "id": "risk",
                        "description": "Review the launch risks",
                        "required_skills": ["risk_analysis"],
                    },
                    {
                        "id": "forecast",
                        "description": "Forecast demand",
                        "required_skills": ["statistics"],
                    },
                ],
            },
        )
        # The control run returned after allocating; each task ran as a background run of the
        # task graph on a thread of its own, and reported back by enqueuing a control run.
        state = await _until(client, thread["thread_id"], lambda s: set(_statuses(s).values()) == {"completed"})
        task_threads = await client.threads.search(metadata={"graph_id": "task"}, limit=100)
        runs = {t["values"]["task"]["id"] for t in task_threads if t.get("values")}
    assert {"risk", "forecast"} <= runs
    # The orchestra's output schema (collaborations appear once a run wrote any).
    assert {"tasks", "allocations", "metrics"} <= set(out) <= {"tasks", "allocations", "metrics", "collaborations"}
    assert state["next"] == []  # the run finished
    values = state["values"]
    assert {a["task_id"]: a["agent_id"] for a in values["allocations"].values()} == {
        "risk": "lilith-001",
        "forecast": "pythagoras-001",
    }
    assert values["allocations"]["alloc-risk"]["breakdown"]["skills"] == 1.0
    assert {t: r["status"] for t, r in values["tasks"].items()} == {
        "risk": "completed",
        "forecast": "completed",
    }
    assert values["tasks"]["risk"]["result"].startswith("[simulated] lilith-001")
    assert values["metrics"]["tasks_submitted"] == 2


async def test_an_agent_graph_runs_statelessly(dev_server: str) -> None:
    from langgraph_sdk import get_client

    async with get_client(url=dev_server) as client:
        out = await client.runs.wait(
            None,
            "pythagoras",
            input={
                "task": {
                    "id": "proof",
                    "description": "Prove it",
                    "required_skills": ["mathematics"],
                },
                "agent": PYTHAGORAS.default_profile("pythagoras-001"),
            },
        )
    assert out["report"]["agent_id"] == "pythagoras-001"
    assert out["report"]["simulated"] is True
    assert out["report"]["status"] == "completed"


async def test_an_escalation_interrupts_and_a_command_resumes_it(dev_server: str) -> None:
    from langgraph_sdk import get_client

    hopeless = PYTHAGORAS.default_profile("pythagoras-009", reliability=0.01)  # fails in simulation
    async with get_client(url=dev_server) as client:
        thread = await client.threads.create()
        tid = thread["thread_id"]
        out = await client.runs.wait(tid, "orchestra", input={
            "register_agents": [hopeless],
            "submit_tasks": [{"id": "calc", "description": "Compute", "required_skills": ["statistics"]}],
        })
        assert "__interrupt__" not in out  # the control run only allocated; the task run fails later
        state = await _until(client, tid, lambda s: s["next"] == ["escalation"])
        [interrupt] = [i for t in state["tasks"] for i in t["interrupts"]]
        assert interrupt["value"]["tasks"][0]["task_id"] == "calc"
        assert state["values"]["tasks"]["calc"]["status"] == "escalating"

        await client.runs.wait(tid, "orchestra", command={
            "resume": {"calc": {"action": "resolve", "result": "decided by a human"}}
        })
        state = await client.threads.get_state(tid)
    assert state["next"] == []
    task = state["values"]["tasks"]["calc"]
    assert (task["status"], task["result"]) == ("completed", "decided by a human")
