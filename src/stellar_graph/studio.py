"""The orchestra's graphs for ``langgraph.json`` (LangGraph Studio, ``langgraph dev``, the API server).

Import this module only from ``langgraph.json``: it builds the graphs when imported, from the config
file ``STELLAR_GRAPH_CONFIG`` names (a config or a scenario file; its ``agent_types`` are the
project's own agent types), or from the defaults. A project's ``langgraph.json``::

    {
      "dependencies": ["."],
      "graphs": {
        "orchestra": "stellar_graph.studio:orchestra",
        "task": "stellar_graph.studio:task",
        "cartographer": "stellar_graph.studio:cartographer"
      },
      "env": ".env"
    }

with ``STELLAR_GRAPH_CONFIG=team.yaml`` in ``.env``. The names ``orchestra`` and ``task`` are
required: the control graph starts task runs on the ``task`` assistant (a
:class:`~stellar_graph.runtime.ServerRunner`), and each task run reports back to ``orchestra``.
Every agent type (the reference team and the declared ones) is also a graph of its own, named
after the type (``atlas``, ``cartographer``): input ``{"task", "agent"}``, output ``{"report"}``.
All are compiled without a checkpointer: the server brings its own persistence. Agents run
simulated unless ``STELLAR_GRAPH_MODEL``, ``llm.model`` or their type names a chat model.
"""

from __future__ import annotations

import os
from typing import Any

from stellar_graph.agents.factory import compile_agents
from stellar_graph.agents.policy import AgentPolicy
from stellar_graph.agents.spec import AgentTypeRegistry, agent_specs
from stellar_graph.config import OrchestraConfig
from stellar_graph.graph import create_orchestra
from stellar_graph.graphs.task import create_task_graph
from stellar_graph.llm import ChatModels, make_chat_model
from stellar_graph.runtime.runners import ServerRunner

__all__ = ["CONFIG_ENV", "agents", "orchestra", "task"]

CONFIG_ENV = "STELLAR_GRAPH_CONFIG"

_config = OrchestraConfig.load(os.environ.get(CONFIG_ENV) or None)
_model = make_chat_model(_config.llm)

orchestra = create_orchestra(
    _config, model=_model, runner=ServerRunner(assistant_id="task", orchestra_id="orchestra")
).compile(name="orchestra")
"""The control graph."""

task = create_task_graph(_config, model=_model).compile(name="task")
"""The task graph: one run per task attempt, the agent subgraphs inside."""

agents: dict[str, Any] = compile_agents(
    AgentTypeRegistry(agent_specs(_config.agent_types)).specs,
    model=_model,
    policy=AgentPolicy.from_config(_config.emergency_protocols, simulated_seconds=_config.llm.simulated_seconds),
    models=ChatModels(_config.llm),
)
"""Each agent type's graph by name; each is also an attribute of this module."""

globals().update(agents)
