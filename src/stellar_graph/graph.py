"""`create_orchestra`: the control graph of the orchestra, as an uncompiled LangGraph ``StateGraph``.

::

    START → intake → monitor ─┬─────────────────────────────→ allocator → dispatch ─┬→ optimizer ─┬→ END
                              └→ collaboration → negotiation → …  ──┘               │             └→ escalation
                                                                                    └→ escalation ──(resume)→ allocator

A control run is short: it takes the events it was given (new agents and tasks, outcomes of
finished task runs, health changes, bus messages), applies them, allocates, starts the task runs
that became possible (each on its own thread in :func:`~stellar_graph.graphs.create_task_graph`)
and returns. It never waits for agent work; the runner hands each finished run back as the next
control event. The collaboration path still runs its agents inside the control run (see
``docs/decisions.md``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from langchain_core.language_models import BaseChatModel
from langgraph.graph import END, START, StateGraph

from stellar_graph._inline import inline, routed
from stellar_graph.agents.factory import ToolsProvider, compile_agents
from stellar_graph.agents.policy import AgentPolicy
from stellar_graph.agents.spec import AgentSpec, AgentTypeRegistry, agent_specs
from stellar_graph.board import utc_now
from stellar_graph.collaboration.nodes import add_collaboration_nodes, route_after_intake
from stellar_graph.config import OrchestraConfig
from stellar_graph.llm import ChatModels, make_chat_model
from stellar_graph.nodes.allocator import make_allocator
from stellar_graph.nodes.dispatch import make_dispatch
from stellar_graph.nodes.escalation import escalation
from stellar_graph.nodes.intake import make_intake
from stellar_graph.nodes.monitor import make_monitor
from stellar_graph.nodes.optimizer import make_optimizer, route_after_optimizer
from stellar_graph.runtime.runners import TaskRunner
from stellar_graph.state import OrchestraInput, OrchestraOutput, OrchestraState
from stellar_graph.tokens import count_tokens

__all__ = ["create_orchestra"]

OrchestraGraph = StateGraph[OrchestraState, None, OrchestraInput, OrchestraOutput]


def create_orchestra(
    config: OrchestraConfig | Mapping[str, Any] | str | None = None,
    *,
    model: BaseChatModel | None = None,
    agents: Sequence[AgentSpec] | None = None,
    seed: int = 0,
    clock: Callable[[], datetime] = utc_now,
    extra_tools: ToolsProvider | None = None,
    runner: TaskRunner | None = None,
) -> OrchestraGraph:
    """Build the orchestra's control graph.

    Args:
        config: an :class:`OrchestraConfig`, a dict, or a YAML/TOML path; defaults otherwise.
        model: the chat model of collaboration planning, votes and mediation (and of the
            collaborations' agents). ``None`` uses ``config.llm.model`` when set, else the
            deterministic fallbacks and simulated agents.
        agents: the agent types instances may be registered as (default the reference team),
            besides those ``config.agent_types`` declares.
        seed: seed of the simulated agents and of the allocator's learner.
        clock: the time source (tests pass a fixed clock).
        extra_tools: returns tools every agent may call in addition to its spec's.
        runner: starts task runs when the run context brings no runner (the LangGraph API
            server's graph passes a :class:`~stellar_graph.runtime.ServerRunner`).

    Returns:
        An uncompiled ``StateGraph``; compile it with your checkpointer and store. Task runs are
        started by the runner passed as ``context=OrchestraContext(runner=...)``;
        :class:`~stellar_graph.runtime.OrchestraRuntime` does all of that.

    Raises:
        ConfigurationError: bad config or agent types (checked before any node is built).

    Example:
        >>> from langgraph.checkpoint.memory import InMemorySaver
        >>> app = create_orchestra().compile(checkpointer=InMemorySaver())
    """
    cfg = OrchestraConfig.load(config)
    registry = AgentTypeRegistry(agent_specs(cfg.agent_types, agents))
    chat = model if model is not None else make_chat_model(cfg.llm)
    model_name = cfg.llm.model or "gpt-4o"

    def tokens(text: str) -> int:
        return count_tokens(text, model_name)

    builder: OrchestraGraph = StateGraph(
        OrchestraState, input_schema=OrchestraInput, output_schema=OrchestraOutput
    )
    builder.add_node("intake", make_intake(registry, tokens, clock))
    monitor = make_monitor(cfg, clock, outbox=getattr(runner, "posts_to_outbox", False))
    # monitor touches no collaboration, optimizer makes no task escalating: both route on their input
    builder.add_node("monitor", routed(monitor, route_after_intake), destinations=("collaboration", "allocator"))
    builder.add_node("allocator", make_allocator(cfg, clock, seed))
    builder.add_node("dispatch", make_dispatch(clock, runner), destinations=("optimizer", "escalation", END))
    builder.add_node("optimizer", routed(make_optimizer(cfg, clock), route_after_optimizer), destinations=("escalation", END))
    builder.add_node("escalation", inline(escalation), destinations=("allocator", END))
    policy = AgentPolicy.from_config(cfg.emergency_protocols, simulated_seconds=cfg.llm.simulated_seconds)
    agent_graphs = compile_agents(
        registry.specs, model=chat, seed=seed, extra_tools=extra_tools, policy=policy, models=ChatModels(cfg.llm)
    )
    add_collaboration_nodes(builder, model=chat, agent_graphs=agent_graphs, config=cfg, clock=clock)
    builder.add_edge(START, "intake")
    builder.add_edge("intake", "monitor")
    builder.add_edge("allocator", "dispatch")
    return builder
