"""The orchestra's nodes: thin adapters that read state, call the core and return an update."""

from __future__ import annotations

from typing import Any, Protocol

from stellar_graph.state import OrchestraState

__all__ = ["StateNode"]


class StateNode(Protocol):
    """A node of the orchestra graph (LangGraph matches nodes by the parameter name ``state``)."""

    def __call__(self, state: OrchestraState) -> Any: ...
