"""The orchestra graph, as the LangGraph API server / Studio loads it (see ``langgraph.json``).

``graph`` is compiled without a checkpointer: the server brings its own persistence. Agents run
simulated unless ``STELLAR_GRAPH_MODEL`` names a chat model; ``STELLAR_GRAPH_CONFIG`` may name a
YAML or TOML config file. ``python graphs/orchestra.py`` runs
a small demo with an in-memory checkpointer.
"""

from __future__ import annotations

import asyncio
import json
import os

from langgraph.checkpoint.memory import InMemorySaver

from stellar_graph import ATLAS, LILITH, PYTHAGORAS, create_orchestra

graph = create_orchestra(os.environ.get("STELLAR_GRAPH_CONFIG") or None).compile(name="orchestra")

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
    """Run the demo input through the orchestra and return the final task board."""
    app = create_orchestra().compile(checkpointer=InMemorySaver())
    out = await app.ainvoke(DEMO_INPUT, {"configurable": {"thread_id": "demo"}})
    return {tid: {"agent": t["agent_id"], "status": t["status"]} for tid, t in out["tasks"].items()}


def main() -> None:
    print(json.dumps(asyncio.run(demo()), indent=2))


if __name__ == "__main__":
    main()
