"""The orchestra's nodes: thin adapters that read state, call the core and return an update."""

from __future__ import annotations

from typing import Any, Protocol

from stellar_graph.agents.worker import WorkerInput
from stellar_graph.state import OrchestraState

__all__ = ["AgentNode", "StateNode"]


class StateNode(Protocol):
    """A node of the orchestra graph (LangGraph matches nodes by the parameter name ``state``)."""

    def __call__(self, state: OrchestraState) -> Any: ...


class AgentNode(Protocol):
    """An agent-type node: it receives one ``Send`` packet."""

    async def __call__(self, state: WorkerInput) -> dict[str, Any]: ...
