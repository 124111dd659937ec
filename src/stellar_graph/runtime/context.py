"""What a control run gets besides its state: the runner that starts task runs."""

from __future__ import annotations

from dataclasses import dataclass

from stellar_graph.runtime.runners import TaskRunner

__all__ = ["OrchestraContext"]


@dataclass(frozen=True)
class OrchestraContext:
    """The run context of the control graph (``ainvoke(..., context=OrchestraContext(...))``).

    Attributes:
        runner: starts the task runs the control run decided. Without one (a bare graph
            invocation, Studio) the runs are only recorded on the board, as ``running`` with
            their handle, for a host to start (``OrchestraRuntime`` does on start-up).
    """

    runner: TaskRunner | None = None
