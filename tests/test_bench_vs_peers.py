"""tools/bench_vs_peers.py: the mock LLM's script, the counting, and issue 9's counted claims.

The benchmark's ``--quick`` run goes in-process through every system once (one module-scoped
run); only counted numbers are asserted, never timings.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("langgraph_supervisor", reason="peers are the `bench` extra")
pytest.importorskip("langgraph_swarm", reason="peers are the `bench` extra")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

import bench_vs_peers
from _peers_report import busy_time, call_tokens
from _peers_server import Call, decide
from _peers_systems import SHAPE_AGENT, SHAPE_OUTCOME, SHAPE_SUBMIT
from _peers_workload import CRITERION, make_workload
from stellar_graph import REFERENCE_TEAM
from stellar_graph.graphs.runtime import open_runtime
from stellar_graph.tokens import count_message_tokens, count_tokens

WORKLOAD = make_workload(8)
TASK = WORKLOAD.tasks[1]  # owned by edison
TOOLS = [
    {"type": "function", "function": {"name": f"transfer_to_{s.name}"}} for s in REFERENCE_TEAM
]


def _body(system: str, *rest: dict, **extra) -> dict:
    return {"messages": [{"role": "system", "content": system}, *rest], **extra}


def _user(bt=TASK) -> dict:
    return {"role": "user", "content": bt.message}


# -- workload ---------------------------------------------------------------------------------


def test_each_task_needs_a_skill_exactly_one_agent_holds() -> None:
    workload = make_workload(40)
    assert len(workload.tasks) == 40
    assert Counter(bt.owner for bt in workload.tasks) == {s.name: 10 for s in REFERENCE_TEAM}
    for bt in workload.tasks:
        [skill] = bt.task["required_skills"]
        holders = [s.name for s in REFERENCE_TEAM if skill in (*s.capabilities, *s.specializations)]
        assert holders == [bt.owner], bt.id
        assert bt.task["id"] in bt.message and bt.task["description"] in bt.message
    assert len({bt.answer for bt in workload.tasks}) == 40


# -- the mock LLM's script --------------------------------------------------------------------


def test_supervisor_hands_off_to_the_owner_then_finishes_with_the_answer() -> None:
    kind, caller, task_id, reply = decide(
        WORKLOAD, _body("You are a supervisor", _user(), tools=TOOLS)
    )
    assert (kind, caller, task_id) == ("routing", "supervisor", TASK.id)
    assert reply == {"tool_calls": [{"name": "transfer_to_edison", "arguments": {}}]}
    answered = _body("sup", _user(), {"role": "assistant", "content": TASK.answer}, tools=TOOLS)
    assert decide(WORKLOAD, answered)[::3] == ("routing", {"content": TASK.answer})
    forward = [*TOOLS, {"type": "function", "function": {"name": "forward_message"}}]
    answered["tools"] = forward
    assert decide(WORKLOAD, answered)[3] == {
        "tool_calls": [{"name": "forward_message", "arguments": {"from_agent": "edison"}}]
    }


def test_only_the_newest_task_of_a_shared_thread_counts() -> None:
    earlier = WORKLOAD.tasks[0]
    history = [_user(earlier), {"role": "assistant", "content": earlier.answer}, _user()]
    kind, _, task_id, reply = decide(WORKLOAD, _body("sup", *history, tools=TOOLS))
    assert (kind, task_id) == ("routing", TASK.id)
    assert reply["tool_calls"][0]["name"] == "transfer_to_edison"


def test_agents_answer_as_agentanswer_json_or_text_and_swarm_agents_hand_off() -> None:
    edison = WORKLOAD.system_prompt(REFERENCE_TEAM[1])
    atlas = WORKLOAD.system_prompt(REFERENCE_TEAM[0])
    schema = {"type": "json_schema", "json_schema": {"name": "AgentAnswer", "schema": {}}}
    kind, caller, _, reply = decide(WORKLOAD, _body(edison, _user(), response_format=schema))
    assert (kind, caller) == ("work", "edison")
    assert json.loads(reply["content"]) == {
        "result": TASK.answer,
        "criteria_met": [CRITERION],
        "confidence": 0.9,
    }
    assert decide(WORKLOAD, _body(edison, _user()))[::3] == ("work", {"content": TASK.answer})
    # Atlas holding a handoff tool to the owner hands off (swarm); without one it does the work.
    assert decide(WORKLOAD, _body(atlas, _user(), tools=TOOLS))[:2] == ("routing", "atlas")
    assert decide(WORKLOAD, _body(atlas, _user()))[:2] == ("work", "atlas")


def test_requests_without_a_task_or_handoff_tool_are_refused() -> None:
    with pytest.raises(ValueError, match="names no workload task"):
        decide(WORKLOAD, _body("sup", {"role": "user", "content": "hello"}))
    with pytest.raises(ValueError, match="transfer_to_edison"):
        decide(WORKLOAD, _body("sup", _user()))


# -- counting ---------------------------------------------------------------------------------


def _call(body: dict, reply: dict, started: float = 0.0, finished: float = 1.0) -> Call:
    return Call("s", "work", "edison", TASK.id, body, reply, started, finished)


def test_call_tokens_count_messages_schemas_and_replies() -> None:
    tool_call = {
        "id": "c1",
        "type": "function",
        "function": {"name": "transfer_to_edison", "arguments": "{}"},
    }
    messages = [
        {"role": "system", "content": "You are a supervisor"},
        _user(),
        {"role": "assistant", "content": None, "tool_calls": [tool_call]},
        {"role": "tool", "content": "Successfully transferred to edison", "tool_call_id": "c1"},
    ]
    expected = count_message_tokens(
        [
            SystemMessage("You are a supervisor"),
            HumanMessage(TASK.message),
            AIMessage("", tool_calls=[{"name": "transfer_to_edison", "args": {}, "id": "c1"}]),
            ToolMessage("Successfully transferred to edison", tool_call_id="c1"),
        ],
        "gpt-4o-mini",
    )
    body = {"messages": messages, "tools": TOOLS}
    reply = {"tool_calls": [{"name": "forward_message", "arguments": {"from_agent": "edison"}}]}
    prompt, schema, completion = call_tokens(_call(body, reply))
    assert prompt == expected
    assert schema == count_tokens(json.dumps(TOOLS, separators=(",", ":")))
    assert completion == count_tokens("forward_message") + count_tokens('{"from_agent": "edison"}')
    assert call_tokens(_call({"messages": messages}, {"content": TASK.answer}))[1:] == (
        0,
        count_tokens(TASK.answer),
    )


def test_busy_time_is_the_union_of_intervals() -> None:
    calls = [_call({}, {}, 0.0, 1.0), _call({}, {}, 0.5, 2.0), _call({}, {}, 3.0, 3.5)]
    assert busy_time(calls) == pytest.approx(2.5)
    assert busy_time([]) == 0.0


# -- the --quick run --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def quick() -> bench_vs_peers.BenchResult:
    # Counts do not depend on the disk; tmpfs keeps this test's SQLite commits cheap.
    shm = ["--db-dir", "/dev/shm"] if Path("/dev/shm").is_dir() else []
    options = bench_vs_peers.parse_args(["--quick", *shm])
    return asyncio.run(bench_vs_peers.run_benchmark(options))


@pytest.mark.slow
def test_stellar_graph_routes_every_task_with_zero_routing_calls(quick) -> None:
    n = len(quick.workload.tasks)
    assert quick.server_errors == []
    for system in ("stellar", "stellar-graph"):
        run = quick.median(system)
        assert (run.routing_calls, run.work_calls) == (0, n)
        assert (run.routed_ok, run.answered_ok) == (n, n)
    facade, graph = quick.median("stellar"), quick.median("stellar-graph")
    assert facade.total_tokens == graph.total_tokens  # same graph, same requests
    claims = {c.text: c.ok for c in quick.claims()}
    assert claims["stellar_graph makes zero routing LLM calls"] is True
    assert claims["every task routed to the skill-matching agent (and answered)"] is True


@pytest.mark.slow
def test_peers_spend_the_routing_calls_their_design_implies(quick) -> None:
    n = len(quick.workload.tasks)
    calls = {s: (r[0].routing_calls, r[0].work_calls) for (s, _), r in quick.runs.items()}
    assert (
        calls["supervisor"] == calls["supervisor-fwd"] == calls["supervisor-shared"] == (2 * n, n)
    )
    not_atlas = sum(bt.owner != "atlas" for bt in quick.workload.tasks)
    assert calls["swarm"] == (not_atlas, n)  # Atlas starts and hands off the others' tasks
    assert calls["plain"] == (0, n)
    for (system, _), runs in quick.runs.items():
        assert (runs[0].routed_ok, runs[0].answered_ok) == (n, n), system


@pytest.mark.slow
def test_same_agent_prompts_everywhere_so_tokens_compare_like_for_like(quick) -> None:
    stellar, plain = quick.median("stellar"), quick.median("plain")
    # Identical system and task messages; stellar_graph adds only its response_format (JSON mode).
    assert stellar.prompt_tokens == plain.prompt_tokens
    assert stellar.schema_tokens > 0 and plain.schema_tokens == 0
    totals = {s: quick.median(s).total_tokens for s in ("plain", "stellar", "swarm", "supervisor")}
    assert totals["plain"] < totals["stellar"] < totals["swarm"] < totals["supervisor"]
    assert totals["stellar"] * 2 < totals["supervisor"]
    assert quick.median("supervisor-shared").total_tokens > totals["supervisor"]


@pytest.mark.slow
def test_stellar_graph_spends_at_most_a_third_of_the_supervisors_tokens(quick) -> None:
    # Holds since agents use JSON mode with the reply's shape in the task message instead of
    # sending the AgentAnswer schema with every call (0.41 before, 0.29 after).
    assert quick.median("stellar").total_tokens * 3 <= quick.median("supervisor").total_tokens


# -- the shape: stellar_graph's runs and node paths, no-op nodes -----------------------------


class _TaskRunSpy:
    """The compiled task graph, recording the nodes each run takes (subgraphs included)."""

    def __init__(self, app) -> None:
        self.app, self.paths = app, []

    def __getattr__(self, name: str):
        return getattr(self.app, name)

    async def ainvoke(self, payload, config, **kwargs):
        path, out = [], {}
        async for namespace, mode, chunk in self.app.astream(
            payload, config, stream_mode=["updates", "values"], subgraphs=True, **kwargs
        ):
            if mode == "updates":
                inner = tuple(part.split(":", 1)[0] for part in namespace)
                path += [(*inner, node) for node in chunk]
            elif not namespace:
                out = chunk
        self.paths.append(path)
        return out


def test_the_shape_takes_the_live_orchestras_runs_and_paths() -> None:
    """``stellar-shape`` is the floor of stellar_graph's overhead only while it takes the same
    runs and node paths per task as the live orchestra: checked here against the real one."""
    async def main() -> tuple[list[str], list[list[tuple[str, ...]]]]:
        config = {"persistence": {"backend": "memory"}}
        async with open_runtime(config, thread_id="shape") as runtime:
            await runtime.submit({"register_agents": [
                {"agent_id": "atlas-001", "agent_type": "AtlasAgent", "capabilities": ["research"]}
            ]})
            spy = _TaskRunSpy(runtime.runner.app)
            runtime.runner.app = spy
            nodes: list[str] = []
            runtime.listeners.append(nodes.extend)  # each step's update, keyed by node
            task = {"id": "t1", "description": "Survey", "required_skills": ["research"]}
            await runtime.submit({"submit_tasks": [task]})
            await runtime.wait_idle()
        return nodes, spy.paths

    nodes, task_runs = asyncio.run(main())
    assert nodes == [*SHAPE_SUBMIT, *SHAPE_OUTCOME]  # the task's control run, then its outcome's
    [task_run] = task_runs
    agent = "atlas"
    assert task_run == [("begin",), *[(agent, node) for node in SHAPE_AGENT], (agent,), ("finish",)]
