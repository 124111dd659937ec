"""Users' own agent types, as a new user would add them (issue: custom agent types everywhere).

A small project is built in a temporary directory (outside the repository) from the README's
"Your own agents" blocks: a prompt file, a LangGraph agent graph, a plain function agent, a
``team.yaml`` declaring them and a ``langgraph.json``. The facade, the CLI, ``stellar-graph serve``
(RemoteRunnable) and ``langgraph dev`` (langgraph-sdk) each run its tasks on those agents; an agent
served by ``langgraph dev`` joins an orchestra in this process as a ``RemoteGraph``; two types
(and one instance) with their own models reach their own model over HTTP (respx).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
import yaml
from langchain_core.messages import AIMessage
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda
from langgraph.graph import END, START, MessagesState, StateGraph

from stellar_graph import AgentSpec, ConfigurationError, OrchestraConfig, StellarOrchestra
from stellar_graph.errors import ModelBehaviorError, UnknownAgentError
from stellar_graph.testing import acheck_agent_contract, check_agent_contract, structured_completion

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

import bench_server
from tests.servers import cli, safe_env, stellar_server

README = Path(__file__).resolve().parents[1] / "README.md"
FILE_BLOCK = re.compile(r"<!-- file: (?P<name>[^ ]+) -->\n```[a-z]*\n(?P<body>.*?)```", re.DOTALL)
EXPECTED = {  # task -> (agent, result) for the project's scenario
    "coast-map": ("carto-1", "[simulated] carto-1 (CartographerAgent) completed 'coast-map': Map the coast"),
    "hill-survey": ("surv-1", "survey of hill-survey by surv-1"),
    "file-it": ("clerk-1", "filed file-it"),
}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The README's project, written file by file into a temporary directory."""
    root = tmp_path_factory.mktemp("mapping-project")
    files = {m["name"]: m["body"] for m in FILE_BLOCK.finditer(README.read_text(encoding="utf-8"))}
    assert set(files) == {"my_agents.py", "prompts/cartographer.md", "team.yaml", "langgraph.json"}
    for name, body in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(body, encoding="utf-8")
    return root


def _scenario(project: Path) -> dict[str, Any]:
    return yaml.safe_load((project / "team.yaml").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def _outcomes(tasks: dict[str, Any]) -> dict[str, tuple[str, str]]:
    assert {t["status"] for t in tasks.values()} == {"completed"}, tasks
    return {tid: (t["agent_id"], t["result"]) for tid, t in tasks.items()}


# -- the facade -----------------------------------------------------------------------------------
async def test_the_facade_runs_the_projects_types_from_its_yaml_on_sqlite(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # paths in team.yaml are relative to the file, not to here
    config = OrchestraConfig.load(project / "team.yaml").merged({"persistence": {"data_dir": str(tmp_path / "data")}})
    scenario = _scenario(project)
    async with StellarOrchestra(config, thread_id="mapping") as orchestra:
        assert {"CartographerAgent", "SurveyorAgent", "ClerkAgent", "AtlasAgent"} <= set(orchestra.agent_types.type_names())
        for agent in scenario["agents"]:
            await orchestra.register_agent(agent)
        await orchestra.orchestrate_multiple_tasks(scenario["tasks"])
        await orchestra.wait_idle()
        records = await orchestra.get_task_records(list(EXPECTED))
    assert _outcomes({t: r["task"] for t, r in records.items()}) == EXPECTED
    assert (tmp_path / "data" / "checkpoints.sqlite").is_file()


async def test_an_agent_type_added_at_run_time_takes_tasks_at_once(tmp_path: Path) -> None:
    config = {"persistence": {"data_dir": str(tmp_path)}}
    async with StellarOrchestra(config, thread_id="late") as orchestra:
        await orchestra.register_agent({"agent_id": "atlas-001", "agent_type": "atlas", "capabilities": ["ethics"]})
        with pytest.raises(UnknownAgentError, match="Unknown agent type 'CartographerAgent'.*register_agent_type"):
            await orchestra.register_agent({"agent_id": "carto-1", "agent_type": "CartographerAgent", "capabilities": ["mapping"]})
        spec = orchestra.register_agent_type(AgentSpec(
            name="cartographer", capabilities=("mapping",), graph=lambda i: {"result": f"map of {i['task']['id']}", "criteria_met": []},
        ))
        with pytest.raises(ConfigurationError, match="already name a known type"):
            orchestra.register_agent_type(AgentSpec(name="cartographer"))
        await orchestra.register_agent(spec.default_profile("carto-1"))
        await orchestra.orchestrate_task({"id": "coast", "description": "Map the coast", "required_skills": ["mapping"]})
        await orchestra.wait_idle()
        record = (await orchestra.get_task_records(["coast"]))["coast"]["task"]
        assert "atlas-001" in orchestra.registered_agents()
    assert (record["agent_id"], record["status"], record["result"]) == ("carto-1", "completed", "map of coast")


# -- the CLI --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_the_cli_runs_the_projects_yaml_from_another_folder(project: Path, tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [*cli(), "run", str(project / "team.yaml"), "--data-dir", str(tmp_path / "data"), "--report", str(report)],
        cwd=tmp_path, env=safe_env(), capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    for task, (agent, _) in EXPECTED.items():
        assert f"allocated   {task} -> {agent}" in proc.stdout
    assert "survey of hill-survey by surv-1" in proc.stdout and "filed file-it" in proc.stdout  # the result column
    assert "SIMULATED agents of types atlas, edison, lilith, pythagoras, cartographer" in proc.stdout
    assert "own model or graph: surveyor, clerk" in proc.stdout
    tasks = json.loads(report.read_text(encoding="utf-8"))["tasks"]
    assert _outcomes(tasks) == EXPECTED


# -- stellar-graph serve --------------------------------------------------------------------------
@pytest.mark.slow
def test_serve_with_the_projects_yaml_runs_its_agents_over_http(project: Path, tmp_path: Path) -> None:
    from langserve import RemoteRunnable

    args = ["serve", "--config", str(project / "team.yaml"), "--data-dir", str(tmp_path / "data")]
    with stellar_server(args, log=tmp_path / "serve.log", cwd=tmp_path) as url:
        scenario = _scenario(project)
        board = RemoteRunnable(f"{url}/orchestra/", headers={"X-Thread-Id": "mapping"}, timeout=60).invoke(
            {"register_agents": scenario["agents"], "submit_tasks": scenario["tasks"]}
        )
        assert _outcomes(board["tasks"]) == EXPECTED
        one = RemoteRunnable(f"{url}/agents/surveyor/", timeout=60).invoke({
            "task": {"id": "ridge", "description": "Survey the ridge", "required_skills": ["surveying"]},
            "agent": {"agent_id": "surv-9", "agent_type": "surveyor", "capabilities": ["surveying"]},
        })
        assert one["report"]["result"] == "survey of ridge by surv-9"


# -- langgraph dev, and a RemoteGraph agent -------------------------------------------------------
@pytest.fixture(scope="module")
def project_server(project: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`langgraph dev` started in the project folder (its own langgraph.json); yields its URL."""
    if not bench_server.LANGGRAPH.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{bench_server.LANGGRAPH} is missing: install the `studio` extra")
        pytest.skip("langgraph-cli is not installed (the `studio` extra)")
    log = tmp_path_factory.mktemp("dev") / "dev.log"
    with bench_server.dev_server(2, log=log, cwd=project) as url:
        yield url


@pytest.mark.slow
async def test_langgraph_dev_in_the_project_runs_its_agents_through_the_sdk(project: Path, project_server: str) -> None:
    from langgraph_sdk import get_client

    async with get_client(url=project_server) as client:
        graphs = {a["graph_id"] for a in await client.assistants.search(limit=20)}
        assert graphs == {"orchestra", "task", "cartographer", "surveyor"}
        scenario = _scenario(project)
        thread = await client.threads.create()
        await client.runs.create(thread["thread_id"], "orchestra",
                                 input={"register_agents": scenario["agents"], "submit_tasks": scenario["tasks"]})
        deadline = time.monotonic() + 60
        while True:
            tasks = (await client.threads.get_state(thread["thread_id"]))["values"].get("tasks") or {}
            if len(tasks) == len(EXPECTED) and all(t["status"] == "completed" for t in tasks.values()):
                break
            assert time.monotonic() < deadline, tasks
            await asyncio.sleep(0.2)
    assert _outcomes(tasks) == EXPECTED


@pytest.mark.slow
async def test_an_agent_served_by_langgraph_dev_is_an_agent_type_of_an_orchestra_here(
    project_server: str, tmp_path: Path
) -> None:
    from langgraph.pregel.remote import RemoteGraph
    from langgraph_sdk import get_client

    async with get_client(url=project_server) as client:
        remote = AgentSpec(name="field_surveyor", graph=RemoteGraph("surveyor", client=client),
                           capabilities=("surveying",))
        contract = await acheck_agent_contract(remote)
        assert contract["result"] == "survey of contract-check by field_surveyor-001"
        async with StellarOrchestra({"persistence": {"data_dir": str(tmp_path)}}, agents=[remote]) as orchestra:
            await orchestra.register_agent(remote.default_profile("fs-1"))
            await orchestra.orchestrate_task({"id": "ridge", "description": "Survey the ridge",
                                              "required_skills": ["surveying"], "success_criteria": ["accurate"]})
            await orchestra.wait_idle()
            task = (await orchestra.get_task_records(["ridge"]))["ridge"]["task"]
    assert (task["status"], task["result"], task["report"]["criteria_met"]) == ("completed", "survey of ridge by fs-1", ["accurate"])


# -- models per type and per instance -------------------------------------------------------------
BASE = "http://llm.mock/v1"


async def test_each_agent_reaches_its_own_model(tmp_path: Path) -> None:
    asked: dict[str, str] = {}  # agent id (from its system prompt) -> model in the request body

    def answer(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        agent = re.search(r"\(instance ([\w-]+)\)", body["messages"][0]["content"])
        assert agent is not None, body["messages"][0]
        asked[agent[1]] = body["model"]
        return httpx.Response(200, json=structured_completion(
            {"result": f"{agent[1]} on {body['model']}", "criteria_met": [], "confidence": 0.9}, model=body["model"]))

    drafter = AgentSpec(name="drafter", capabilities=("drafting",), model="model-a",
                        prompt="You are ${agent_name} (instance ${agent_id}). Draft.")
    checker = AgentSpec(name="checker", capabilities=("checking",), model="model-b",
                        prompt=ChatPromptTemplate.from_messages([("system", "You are ${agent_name} (instance {agent_id}). Check.")]))
    config = {"persistence": {"data_dir": str(tmp_path)}, "llm": {"base_url": BASE}}
    with respx.mock(base_url=BASE, assert_all_called=True) as mock:
        mock.post("/chat/completions").mock(side_effect=answer)
        async with StellarOrchestra(config, agents=[drafter, checker]) as orchestra:
            assert orchestra.simulated  # no orchestra-wide model: only the types name one
            await orchestra.register_agent(drafter.default_profile("drafter-1"))
            await orchestra.register_agent(checker.default_profile("checker-1", capacity=1))
            await orchestra.register_agent(checker.default_profile("checker-2", capacity=1, model="model-c"))
            await orchestra.orchestrate_multiple_tasks([
                {"id": "d", "description": "Draft it", "required_skills": ["drafting"]},
                {"id": "c1", "description": "Check it", "required_skills": ["checking"]},
                {"id": "c2", "description": "Check it again", "required_skills": ["checking"]},
            ])
            await orchestra.wait_idle()
            records = await orchestra.get_task_records(["d", "c1", "c2"])
    assert asked == {"drafter-1": "model-a", "checker-1": "model-b", "checker-2": "model-c"}
    for record in records.values():
        task = record["task"]
        assert task["status"] == "completed" and task["result"] == f"{task['agent_id']} on {asked[task['agent_id']]}"


# -- the contract ---------------------------------------------------------------------------------
def _messages_agent() -> Any:
    """A graph built on MessagesState, as prebuilt LangGraph agents are."""

    def reply(state: MessagesState) -> dict[str, Any]:
        return {"messages": [AIMessage(f"read: {state['messages'][-1].text.split()[1]}")]}

    builder = StateGraph(MessagesState)
    builder.add_node("reply", reply)
    builder.add_edge(START, "reply")
    builder.add_edge("reply", END)
    return builder.compile()


@pytest.mark.parametrize(
    ("agent", "status", "result"),
    [
        (lambda i: "plain text", "completed", "plain text"),
        (RunnableLambda(lambda i: {"result": "ok", "criteria_met": ["done"], "confidence": 1.0}), "completed", "ok"),
        (lambda i: {"report": {"status": "failed", "error": "no data", "result": ""}}, "failed", ""),
        (_messages_agent(), "completed", "read: contract-check"),
    ],
    ids=["string", "answer-runnable", "failed-report", "messages-graph"],
)
def test_the_contract_accepts_every_documented_shape(agent: Any, status: str, result: str) -> None:
    report = check_agent_contract(agent, task={
        "id": "contract-check", "description": "Say what you do", "required_skills": ["general"],
        "success_criteria": ["done"] if status == "completed" and result == "ok" else [],
    })
    assert (report["status"], report["result"]) == (status, result)


def test_a_string_meets_no_success_criterion() -> None:
    report = check_agent_contract(lambda i: "looks fine", task={
        "id": "t", "description": "Check", "required_skills": ["general"], "success_criteria": ["rigorous"]})
    assert report["status"] == "failed" and report["criteria_unmet"] == ["rigorous"]


def test_output_outside_the_contract_names_the_shapes_that_work() -> None:
    with pytest.raises(ModelBehaviorError, match=r"returned int '42'.*Fix: return \{'report'"):
        check_agent_contract(lambda i: 42)
    with pytest.raises(ModelBehaviorError, match="criteria_met=.*must be a list"):
        check_agent_contract(lambda i: {"result": "x", "criteria_met": "all"})


async def test_a_broken_agent_fails_its_task_with_the_reason_and_the_orchestra_goes_on(tmp_path: Path) -> None:
    broken = AgentSpec(name="broken", capabilities=("mapping",), graph=lambda i: 42)
    config = {"persistence": {"data_dir": str(tmp_path)},
              "emergency_protocols": {"recovery_strategies": ["retry"], "retry_initial_interval_seconds": 0.01}}
    async with StellarOrchestra(config, agents=[broken]) as orchestra:
        await orchestra.register_agent(broken.default_profile("b-1"))
        await orchestra.orchestrate_task({"id": "m", "description": "Map", "required_skills": ["mapping"]})
        await orchestra.wait_idle()
        task = (await orchestra.get_task_records(["m"]))["m"]["task"]
    assert task["status"] == "failed" and "agent contract does not accept" in task["error"]


# -- bad declarations fail where they are made ----------------------------------------------------
@pytest.mark.parametrize(
    ("declared", "message"),
    [
        ({"name": "map maker"}, "Invalid agent type name 'map maker'.*Fix: use a letter"),
        ({"name": "monitor"}, "already have a node of that name"),
        ({"name": "task"}, "already have a node of that name"),
        ({"name": "carto", "prompt": "prompts/missing.md"}, "no prompt file .*missing.md.*Fix: give a path relative to"),
        ({"name": "carto", "prompt": "You are ${agent_name}, born ${birthday}."}, r"uses \['birthday'\].*Fix: use only"),
        ({"name": "carto", "prompt": "cartographer"}, "not a bundled prompt.*Fix: pass a file path"),
        ({"name": "carto", "graph": "no_such_module:agent"}, "cannot import 'no_such_module'"),
        ({"name": "carto", "graph": "my_agents:missing"}, "has no attribute 'missing'"),
        ({"name": "carto", "colour": "red"}, "agent_types"),
    ],
)
def test_a_bad_agent_type_declaration_names_the_field_and_the_fix(
    project: Path, tmp_path: Path, declared: dict[str, Any], message: str
) -> None:
    path = tmp_path / "team.yaml"
    (tmp_path / "my_agents.py").write_text((project / "my_agents.py").read_text(encoding="utf-8"), encoding="utf-8")
    path.write_text(yaml.safe_dump({"agent_types": [declared]}), encoding="utf-8")
    with pytest.raises(ConfigurationError, match=message):
        StellarOrchestra(OrchestraConfig.load(path))


def test_a_declared_type_brings_its_tools_and_model(tmp_path: Path) -> None:
    (tmp_path / "map_tools.py").write_text(
        "from langchain_core.tools import tool\n\n\n@tool\ndef elevation(place: str) -> float:\n"
        '    """Height of a place in metres."""\n    return 42.0\n',
        encoding="utf-8",
    )
    (tmp_path / "team.toml").write_text(
        '[[agent_types]]\nname = "cartographer"\ncapabilities = ["mapping"]\nmodel = "gpt-4o-mini"\n'
        'tools = ["map_tools:elevation"]\n',
        encoding="utf-8",
    )
    orchestra = StellarOrchestra(OrchestraConfig.load(tmp_path / "team.toml"))
    spec = orchestra.agent_types.resolve("cartographer")
    assert [t.name for t in spec.tools] == ["elevation"] and spec.model == "gpt-4o-mini"
    assert spec.tools[0].invoke({"place": "ridge"}) == 42.0
