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
