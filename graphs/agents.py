"""Each reference agent type as a standalone graph (for Studio and the API server).

Input: ``{"task": {...}, "agent": {...profile...}}``; output: ``{"report": {...}}``. Compiled
without a checkpointer; simulated unless ``STELLAR_GRAPH_MODEL`` names a chat model.
``python graphs/agents.py`` runs each agent once on a sample task.
"""

from __future__ import annotations

import asyncio
import json

from stellar_graph import ATLAS, EDISON, LILITH, PYTHAGORAS, OrchestraConfig, create_agent
from stellar_graph.llm import make_chat_model

_MODEL = make_chat_model(OrchestraConfig().llm)

atlas = create_agent(ATLAS, model=_MODEL).compile(name="atlas")
edison = create_agent(EDISON, model=_MODEL).compile(name="edison")
lilith = create_agent(LILITH, model=_MODEL).compile(name="lilith")
pythagoras = create_agent(PYTHAGORAS, model=_MODEL).compile(name="pythagoras")

SAMPLE_TASK = {"id": "sample", "description": "Summarise the state of the project",
               "required_skills": ["knowledge_synthesis"], "success_criteria": []}


async def demo() -> dict[str, str]:
    """Run every agent once on the sample task; return agent -> status."""
    out = {}
    for spec, graph in ((ATLAS, atlas), (EDISON, edison), (LILITH, lilith), (PYTHAGORAS, pythagoras)):
        result = await graph.ainvoke({"task": SAMPLE_TASK, "agent": spec.default_profile(f"{spec.name}-001")})
        out[spec.name] = result["report"]["status"]
    return out


def main() -> None:
    print(json.dumps(asyncio.run(demo()), indent=2))


if __name__ == "__main__":
    main()
