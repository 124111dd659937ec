"""stellar_graph: StellarOrchestra on LangGraph.

A deterministic, explainable allocator assigns tasks to a team of LLM agents (LangGraph
subgraphs) by multi-factor score and capacity; everything is checkpointed.

Example:
    >>> import asyncio
    >>> from stellar_graph import StellarOrchestra
    >>> async def main():
    ...     async with StellarOrchestra({"persistence": {"backend": "memory"}}) as orchestra:
    ...         await orchestra.register_agent({"agent_id": "atlas-001", "agent_type": "AtlasAgent",
    ...             "capabilities": ["knowledge_synthesis"], "specializations": ["ethics"]})
    ...         allocation = await orchestra.orchestrate_task(
    ...             {"id": "t1", "description": "Draft an ethics note", "required_skills": ["ethics"]})
    ...         return await orchestra.monitor_task_execution(allocation.allocation_id)
"""

from __future__ import annotations

from stellar_graph.agents.factory import AgentAnswer, create_agent
from stellar_graph.agents.spec import ATLAS, EDISON, LILITH, PYTHAGORAS, REFERENCE_TEAM, AgentSpec
from stellar_graph.config import OrchestraConfig
from stellar_graph.errors import (
    AllocationError,
    ConfigurationError,
    DuplicateAgentError,
    DuplicateTaskError,
    InvalidInputError,
    ModelBehaviorError,
    OrchestrationError,
    QueueFullError,
    StellarGraphError,
    TeamFormationError,
    UnknownAgentError,
    UnknownMessageError,
    UnknownRecipientError,
)
from stellar_graph.graph import create_orchestra
from stellar_graph.models import AgentProfile, Allocation, Task
from stellar_graph.optimizer import SystemOptimizer
from stellar_graph.orchestra import StellarOrchestra
from stellar_graph.task_allocator import TaskAllocator

__all__ = [
    "ATLAS",
    "EDISON",
    "LILITH",
    "PYTHAGORAS",
    "REFERENCE_TEAM",
    "AgentAnswer",
    "AgentProfile",
    "AgentSpec",
    "Allocation",
    "AllocationError",
    "ConfigurationError",
    "DuplicateAgentError",
    "DuplicateTaskError",
    "InvalidInputError",
    "ModelBehaviorError",
    "OrchestraConfig",
    "OrchestrationError",
    "QueueFullError",
    "StellarGraphError",
    "StellarOrchestra",
    "SystemOptimizer",
    "Task",
    "TaskAllocator",
    "TeamFormationError",
    "UnknownAgentError",
    "UnknownMessageError",
    "UnknownRecipientError",
    "create_agent",
    "create_orchestra",
]

__version__ = "0.1.0"
