"""The deployable graphs in graphs/ load, are compiled without a checkpointer, and run."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"graphs_{name}", ROOT / "graphs" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_langgraph_json_points_at_compiled_graphs_without_checkpointer() -> None:
    config = json.loads((ROOT / "langgraph.json").read_text())
    for ref in config["graphs"].values():
        path, attr = ref.split(":")
        graph = getattr(_load(Path(path).stem), attr)
        assert graph.checkpointer is None


async def test_orchestra_demo_runs() -> None:
    board = await _load("orchestra").demo()
    assert board["ethics-review"]["agent"] == "lilith-001"
    assert board["forecast"]["agent"] == "pythagoras-001"
    assert {t["status"] for t in board.values()} <= {"completed", "failed"}


async def test_agent_graphs_run() -> None:
    statuses = await _load("agents").demo()
    assert set(statuses) == {"atlas", "edison", "lilith", "pythagoras"}
    assert set(statuses.values()) <= {"completed", "failed"}


def test_studio_sees_the_control_graph_and_the_task_graph_with_agent_subgraphs() -> None:
    module = _load("orchestra")
    control = set(module.graph.get_graph().nodes)
    assert {"intake", "allocator", "dispatch", "monitor", "optimizer", "escalation",
            "collaboration", "negotiation", "consensus", "conflict_resolution"} <= control
    task = set(module.task.get_graph(xray=True).nodes)
    for agent in ("atlas", "edison", "lilith", "pythagoras"):  # each a subgraph, expanded
        assert {f"{agent}:plan", f"{agent}:act", f"{agent}:check", f"{agent}:report"} <= task
    assert {"begin", "finish"} <= task


def test_studio_draws_the_routes_the_nodes_take_themselves() -> None:
    """monitor, optimizer and begin route inside the node (``Command``, no conditional edge):
    the drawn graphs still show every way out of them, conditional, as before."""
    module = _load("orchestra")
    control = {(e.source, e.target): e.conditional for e in module.graph.get_graph().edges}
    for edge in [("monitor", "allocator"), ("monitor", "collaboration"), ("optimizer", "escalation"),
                 ("optimizer", "__end__"), ("dispatch", "optimizer")]:
        assert control.get(edge) is True, edge
    task = {(e.source, e.target): e.conditional for e in module.task.get_graph().edges}
    for agent in ("atlas", "edison", "lilith", "pythagoras"):
        assert task.get(("begin", agent)) is True, agent


async def test_a_routed_node_routes_on_its_input_and_applies_its_update() -> None:
    from langgraph.graph import END, START, StateGraph
    from typing_extensions import TypedDict

    from stellar_graph._inline import routed

    class State(TypedDict, total=False):
        n: int
        seen: list[str]

    async def bump(state: State) -> dict[str, int]:
        return {"n": state["n"] + 10}

    def route(state: State) -> str:  # sees the node's input: n before the bump
        return "small" if state["n"] < 5 else "large"

    builder = StateGraph(State)
    builder.add_node("bump", routed(bump, route), destinations=("small", "large"))
    builder.add_node("small", lambda s: {"seen": ["small", str(s["n"])]})
    builder.add_node("large", lambda s: {"seen": ["large", str(s["n"])]})
    builder.add_edge(START, "bump")
    builder.add_edge("small", END)
    builder.add_edge("large", END)
    app = builder.compile()
    assert (await app.ainvoke({"n": 1}))["seen"] == ["small", "11"]
    assert (await app.ainvoke({"n": 7}))["seen"] == ["large", "17"]


def test_no_node_or_router_of_the_graphs_runs_in_a_worker_thread() -> None:
    """LangGraph runs a synchronous node or router of an async graph in the thread pool: a hop
    per call on every control and task run. Ours are all coroutine functions (``inline``)."""
    from functools import partial

    from langchain_core.runnables.config import run_in_executor

    from stellar_graph import create_orchestra
    from stellar_graph.agents.factory import create_agent
    from stellar_graph.agents.spec import ATLAS
    from stellar_graph.graphs.task import create_task_graph

    def threaded(runnable: object) -> bool:
        afunc = getattr(runnable, "afunc", None)
        return isinstance(afunc, partial) and afunc.func is run_in_executor or getattr(afunc, "func", None) is run_in_executor

    for builder in (create_orchestra(), create_task_graph(), create_agent(ATLAS, model=None)):
        nodes = [name for name, spec in builder.nodes.items() if threaded(spec.runnable)]
        routers = [f"{src}:{name}" for src, branches in builder.branches.items() for name, b in branches.items() if threaded(b.path)]
        assert nodes == [] and routers == [], (nodes, routers)
