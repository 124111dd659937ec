"""`TaskAllocator`: the seed's allocation component, as the facade's ``task_allocator`` attribute.

It decides through the orchestra graph (so every decision is checkpointed and visible in the
state) and offers a dry run, :meth:`TaskAllocator.score_agents`, that changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from stellar_graph.board import agent_loads
from stellar_graph.models import Allocation, Task, parse_model
from stellar_graph.scoring import AgentPool, score_task

if TYPE_CHECKING:
    from stellar_graph.orchestra import StellarOrchestra

__all__ = ["TaskAllocator"]


class TaskAllocator:
    """Allocation through the orchestra: single, batch, and explainable dry runs."""

    def __init__(self, orchestra: StellarOrchestra) -> None:
        self._orchestra = orchestra

    async def allocate_task(self, task: Task | Mapping[str, Any]) -> Allocation:
        """Allocate one task (see :meth:`StellarOrchestra.orchestrate_task`)."""
        return await self._orchestra.orchestrate_task(task)

    async def allocate_batch(self, tasks: Sequence[Task | Mapping[str, Any]], *, strategy: str | None = None) -> list[Allocation]:
        """Allocate a batch jointly under capacity (see :meth:`StellarOrchestra.orchestrate_multiple_tasks`).

        Args:
            tasks: the batch.
            strategy: ``optimal``, ``fast``, ``greedy`` or ``auto``; default ``task_allocation.strategy``.
        """
        return await self._orchestra.orchestrate_multiple_tasks(tasks, strategy=strategy)

    def score_agents(self, task: Task | Mapping[str, Any], *, top_k: int = 5) -> dict[str, Any]:
        """Rank the registered agents for ``task`` without allocating it.

        Returns:
            ``{"ranking": [{agent_id, score, breakdown, explanation}...], "infeasible": {agent_id: reason}}``.
        """
        orchestra = self._orchestra
        model = parse_model(Task, task, kind="task")
        agents = orchestra.registered_agents()
        if not agents:
            return {"ranking": [], "infeasible": {"(none)": "no agents registered"}}
        state = orchestra.state()
        loads = agent_loads(state.get("tasks") or {})
        pool = AgentPool.from_records([{**a, "load": loads.get(a["agent_id"], 0)} for a in agents.values()])
        weights = orchestra.config.task_allocation.weights
        scores = score_task(model.model_dump(mode="json"), pool, weights=weights, now=orchestra.now())
        ranking = [
            {
                "agent_id": pool.ids[i],
                "score": round(float(scores.total[i]), 6),
                "breakdown": scores.breakdown(i),
                "explanation": scores.explain(i, weights),
            }
            for i in scores.ranked(top_k)
        ]
        return {"ranking": ranking, "infeasible": scores.reasons()}
