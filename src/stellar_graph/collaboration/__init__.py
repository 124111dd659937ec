"""Collaboration: goal planning, team formation, Contract Net, consensus and mediation.

A collaboration goal enters the orchestra graph through the input key ``start_collaborations``
and runs as nodes of the graph (:mod:`.nodes`): plan (LLM, deterministic fallback) -> negotiate
(Contract Net over the allocator's scores) -> execute in dependency waves -> vote on the
synthesis -> mediate conflicts (LLM, deterministic rules as fallback). The whole record lives in
the checkpointed ``collaborations`` state key. :class:`CollaborationMixin` is the facade API.
"""

from __future__ import annotations

from stellar_graph.collaboration.facade import CollaborationEngine, CollaborationMixin
from stellar_graph.collaboration.models import (
    CollaborationGoal,
    CollaborationRequest,
    TeamFormationError,
    TeamRequirements,
)
from stellar_graph.collaboration.nodes import add_collaboration_nodes, route_after_intake
from stellar_graph.collaboration.stats import collaboration_metrics
from stellar_graph.collaboration.team import Team, form_team

__all__ = [
    "CollaborationEngine",
    "CollaborationGoal",
    "CollaborationMixin",
    "CollaborationRequest",
    "Team",
    "TeamFormationError",
    "TeamRequirements",
    "add_collaboration_nodes",
    "collaboration_metrics",
    "form_team",
    "route_after_intake",
]
