"""The orchestra's two graphs, as the LangGraph API server / Studio loads them (``langgraph.json``).

``graph`` is the control graph; ``task`` is the task graph, one run per task attempt with the
agent subgraphs inside. Both are compiled without a checkpointer: the server brings its own
persistence. The control graph starts task runs as background runs on the same server (a
:class:`~stellar_graph.runtime.ServerRunner`), and each task run enqueues its outcome as a control
run on the orchestra's thread. Agents run simulated unless ``STELLAR_GRAPH_MODEL`` names a chat
model; ``STELLAR_GRAPH_CONFIG`` may name a YAML or TOML config file (its ``agent_types`` join
the reference team). The graphs are built by :mod:`stellar_graph.studio`, which a project of your
own names in its ``langgraph.json`` instead of this file.

``python graphs/orchestra.py`` runs a small demo in-process (in-memory checkpointer).
"""

from __future__ import annotations

import asyncio
import json

from stellar_graph import ATLAS, LILITH, PYTHAGORAS
from stellar_graph.studio import orchestra as graph
from stellar_graph.studio import task
from stellar_graph.testing import run_orchestra

__all__ = ["graph", "task"]

DEMO_INPUT = {
    "register_agents": [
        ATLAS.default_profile("atlas-001"),
        LILITH.default_profile("lilith-001"),
        PYTHAGORAS.default_profile("pythagoras-001"),
    ],
    "submit_tasks": [
        {"id": "ethics-review", "description": "Review the launch plan for ethical risks",
         "required_skills": ["ethics", "risk_analysis"], "priority": "high"},
        {"id": "forecast", "description": "Forecast demand from the pilot data",
         "required_skills": ["statistics"]},
    ],
}


async def demo() -> dict[str, object]:
    """Run the demo input through the orchestra (in this process) and return the final board."""
    out = await run_orchestra(DEMO_INPUT, thread_id="demo")
    return {tid: {"agent": t["agent_id"], "status": t["status"]} for tid, t in out["tasks"].items()}


def main() -> None:
    print(json.dumps(asyncio.run(demo()), indent=2))


if __name__ == "__main__":
    main()
