"""Each reference agent type as a standalone graph (for Studio and the API server).

Input: ``{"task": {...}, "agent": {...profile...}}``; output: ``{"report": {...}}``. Compiled
without a checkpointer; simulated unless ``STELLAR_GRAPH_MODEL`` names a chat model. Built by
:mod:`stellar_graph.studio` (which also serves the agent types a config file declares).
``python graphs/agents.py`` runs each agent once on a sample task.
"""

from __future__ import annotations

import asyncio
import json

from stellar_graph import ATLAS, EDISON, LILITH, PYTHAGORAS
from stellar_graph.studio import atlas, edison, lilith, pythagoras  # type: ignore[attr-defined]

__all__ = ["atlas", "edison", "lilith", "pythagoras"]

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
