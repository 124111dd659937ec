"""The collaboration path of the orchestra graph.

::

    intake ─(goals)→ collaboration → negotiation → collaboration_dispatch ══Send══> collaboration_work
                          ▲              ▲  │              │  ▲                                 │
                          │              │  │              │  └───── collaboration_join ◄───────┘
                          │              │  ▼              ▼
                          └───── route_collaborations ◄── consensus ◄─► conflict_resolution
                                         │
                                         └─(nothing active or queued)→ allocator

* **collaboration** validates new goals (a bad one is recorded ``invalid`` with the field, value
  and fix, never raised: the run goes on), enforces ``max_concurrent_collaborations`` (queue or
  reject) and plans the admitted goals (LLM with a deterministic fallback).
* **negotiation** runs one Contract Net round per collaboration: bids are the allocator's scores.
* **collaboration_dispatch** sends every ready subtask (dependencies done, shared resources free)
  to **collaboration_work**, which runs the awarded agent's subgraph; **collaboration_join**
  records the reports. Waves repeat; failed or unawarded subtasks go to the next round.
* **consensus** has the team vote on the synthesis; **conflict_resolution** mediates split votes,
  contradictions, tied claims and resource contention.

After every node, :func:`route_collaborations` picks the next step; the path ends at ``allocator``
so that tasks submitted in the same input are still allocated.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Literal, get_args

from langchain_core.language_models import BaseChatModel
from langgraph.graph import StateGraph

from stellar_graph._inline import inline
from stellar_graph.collaboration._decide import DecideSteps
from stellar_graph.collaboration._records import ACTIVE, NextStep, route_collaborations
from stellar_graph.collaboration._steps import CollaborationScratch, WorkPacket, WorkSteps
from stellar_graph.config import OrchestraConfig
from stellar_graph.state import OrchestraState

__all__ = [
    "COLLABORATION_NODES",
    "CollaborationScratch",
    "WorkPacket",
    "add_collaboration_nodes",
    "route_after_intake",
    "route_collaborations",
]

COLLABORATION_NODES = (
    "collaboration",
    "negotiation",
    "collaboration_dispatch",
    "collaboration_work",
    "collaboration_join",
    "consensus",
    "conflict_resolution",
)
_NEXT = list(get_args(NextStep))  # every node the collaboration router may choose


class _Steps(WorkSteps, DecideSteps):
    """Every node function of the collaboration path."""


def route_after_intake(state: OrchestraState) -> Literal["collaboration", "allocator"]:
    """New goals, or collaborations left queued or unfinished -> ``collaboration``; else allocate."""
    if state.get("start_collaborations"):
        return "collaboration"
    pending = ACTIVE | {"queued"}
    collabs = (state.get("collaborations") or {}).values()
    return "collaboration" if any(r.get("status") in pending for r in collabs) else "allocator"


def add_collaboration_nodes(
    builder: StateGraph[Any, Any, Any, Any],
    *,
    model: BaseChatModel | None,
    agent_graphs: Mapping[str, Any],
    config: OrchestraConfig,
    clock: Callable[[], datetime],
) -> None:
    """Add the collaboration nodes and their edges to the orchestra builder.

    The caller routes ``intake`` with :func:`route_after_intake`; the path ends at ``allocator``.

    Args:
        builder: the orchestra ``StateGraph`` (it must already have an ``allocator`` node or get one).
        model: the chat model for planning, votes, mediation and bid notes; ``None`` = deterministic.
        agent_graphs: agent node name (``"atlas"``) -> compiled agent subgraph.
        config: the orchestra config (collaboration limits, consensus timeout, LLM timeout).
        clock: the orchestra's time source.
    """
    steps = _Steps(model, agent_graphs, config, clock)
    builder.add_node("collaboration", steps.collaboration)
    builder.add_node("negotiation", steps.negotiation)
    builder.add_node(
        "collaboration_dispatch", inline(steps.dispatch), destinations=("collaboration_work", *_NEXT)
    )
    builder.add_node("collaboration_work", steps.work, input_schema=WorkPacket)
    builder.add_node("collaboration_join", inline(steps.join), input_schema=CollaborationScratch)
    builder.add_node("consensus", steps.consensus)
    builder.add_node("conflict_resolution", steps.conflict_resolution)
    builder.add_edge("collaboration_work", "collaboration_join")
    for name in (
        "collaboration",
        "negotiation",
        "collaboration_join",
        "consensus",
        "conflict_resolution",
    ):
        builder.add_conditional_edges(name, inline(route_collaborations), _NEXT)
