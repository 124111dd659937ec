"""`create_orchestra`: the orchestra as an uncompiled LangGraph ``StateGraph``.

::

    START → intake → allocator → dispatch ══Send══> <agent type> ─→ monitor ─┬→ allocator (more ready work)
                                    └────────────────(nothing to run)────────└→ optimizer → END

The caller compiles it with their own checkpointer and store (or none, for the LangGraph API
server, which brings its own). Agent nodes are ``async``: invoke the graph with ``ainvoke``/``astream``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from langchain_core.language_models import BaseChatModel
from langgraph.graph import END, START, StateGraph

from stellar_graph.agents.factory import ToolsProvider, create_agent
from stellar_graph.agents.policy import AgentPolicy
from stellar_graph.agents.spec import REFERENCE_TEAM, AgentSpec, AgentTypeRegistry
from stellar_graph.agents.worker import create_slot_worker
from stellar_graph.board import utc_now
from stellar_graph.collaboration.nodes import add_collaboration_nodes, route_after_intake
from stellar_graph.config import OrchestraConfig
from stellar_graph.llm import make_chat_model
from stellar_graph.nodes.agent import make_agent_node
from stellar_graph.nodes.allocator import make_allocator, make_dispatch
from stellar_graph.nodes.escalation import escalation
from stellar_graph.nodes.intake import make_intake
from stellar_graph.nodes.monitor import make_monitor, route_after_monitor
from stellar_graph.nodes.optimizer import make_optimizer
from stellar_graph.state import OrchestraInput, OrchestraOutput, OrchestraState
from stellar_graph.tokens import count_tokens

__all__ = ["create_orchestra"]

OrchestraGraph = StateGraph[OrchestraState, None, OrchestraInput, OrchestraOutput]


def create_orchestra(
    config: OrchestraConfig | Mapping[str, Any] | str | None = None,
    *,
    model: BaseChatModel | None = None,
    agents: Sequence[AgentSpec] = REFERENCE_TEAM,
    seed: int = 0,
    clock: Callable[[], datetime] = utc_now,
    extra_tools: ToolsProvider | None = None,
) -> OrchestraGraph:
    """Build the orchestra graph.

    Args:
        config: an :class:`OrchestraConfig`, a dict, or a YAML/TOML path; defaults otherwise.
        model: the agents' chat model. ``None`` uses ``config.llm.model`` when set (``ChatOpenAI``),
            else agents run simulated: same graph and allocator, seeded simulated work.
        agents: the agent types; each becomes a subgraph node.
        seed: seed of the simulated agents.
        clock: the time source (tests pass a fixed clock).
        extra_tools: returns tools every agent may call in addition to its spec's (read at each
            attempt, so tools registered later are picked up).

    Returns:
        An uncompiled ``StateGraph``; compile it with your checkpointer and store.

    Raises:
        ConfigurationError: bad config or agent types (checked before any node is built).

    Example:
        >>> from langgraph.checkpoint.memory import InMemorySaver
        >>> app = create_orchestra().compile(checkpointer=InMemorySaver())
    """
    cfg = OrchestraConfig.load(config)
    registry = AgentTypeRegistry(agents)
    chat = model if model is not None else make_chat_model(cfg.llm)
    model_name = cfg.llm.model or "gpt-4o"

    def tokens(text: str) -> int:
        return count_tokens(text, model_name)

    builder: OrchestraGraph = StateGraph(
        OrchestraState, input_schema=OrchestraInput, output_schema=OrchestraOutput
    )
    builder.add_node("intake", make_intake(registry, tokens, clock))
    builder.add_node("allocator", make_allocator(cfg, clock, seed))
    names = tuple(spec.name for spec in registry.specs)
    policy = AgentPolicy.from_config(cfg.emergency_protocols)
    builder.add_node("dispatch", make_dispatch(cfg, clock), destinations=(*names, "escalation", "optimizer"))
    agent_graphs: dict[str, Any] = {}
    for spec in registry.specs:
        agent = create_agent(spec, model=chat, seed=seed, extra_tools=extra_tools, policy=policy).compile(name=spec.name)
        agent_graphs[spec.name] = agent
        worker = create_slot_worker(agent, clock).compile(name=f"{spec.name}_worker")
        builder.add_node(spec.name, make_agent_node(spec.name, worker, cfg))
        builder.add_edge(spec.name, "monitor")
    builder.add_node("monitor", make_monitor(clock))
    builder.add_node("optimizer", make_optimizer(cfg, clock))
    add_collaboration_nodes(builder, model=chat, agent_graphs=agent_graphs, config=cfg, clock=clock)
    builder.add_edge(START, "intake")
    builder.add_conditional_edges("intake", route_after_intake, ["collaboration", "allocator"])
    builder.add_edge("allocator", "dispatch")
    builder.add_conditional_edges("monitor", route_after_monitor, ["allocator", "escalation", "optimizer"])
    builder.add_node("escalation", escalation, destinations=("allocator", "optimizer"))
    builder.add_edge("optimizer", END)
    return builder
