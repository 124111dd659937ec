"""``allocator``: decide who does what (the task runs start in ``dispatch``)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

import numpy as np
from langgraph.runtime import Runtime

from stellar_graph.board import WAITING, imbalance, plan_allocations
from stellar_graph.config import OrchestraConfig
from stellar_graph.memory import load_predictor, read_memory
from stellar_graph.state import OrchestraState

__all__ = ["make_allocator"]


def make_allocator(config: OrchestraConfig, clock: Callable[[], datetime], seed: int = 0) -> Callable[..., Any]:
    """Build the allocator node: score ready tasks against agents and bind them to agent slots.

    Completion-time calibration comes from the Store (when the graph has one), so the deadline
    factor uses each agent's learned 90% upper bound. In ``adaptive`` mode the learned state
    comes from the Store too: its live weighting scores, and its learner picks among near-best
    agents. The node only reads the Store and seeds its choices from ``seed`` and the waiting
    tasks, so a pass re-run after a crash makes the same decisions (and so starts the same task
    runs, whose threads are derived from the task and attempt).
    """
    alloc = config.task_allocation
    mode = config.orchestration_mode

    async def allocator(state: OrchestraState, runtime: Runtime[Any]) -> dict[str, Any]:
        now = clock()
        tasks = state.get("tasks") or {}
        # Learning lives in the Store: without one, adaptive mode allocates as dynamic does.
        learner, predictor = None, None
        if not any(t.get("status") in WAITING for t in tasks.values()):
            pass  # nothing to place (a run that only applies outcomes): the plan reads neither
        elif mode == "adaptive" and runtime.store is not None:
            memory = await read_memory(runtime.store, config)  # one Store batch: learner and predictor
            learner, predictor = memory.learned.learner, memory.predictor
        else:
            predictor = await load_predictor(runtime.store)
        plan = plan_allocations(
            tasks,
            state.get("agents") or {},
            weights=learner.weights if learner is not None else alloc.weights,
            now=now,
            strategy=state.get("allocation_strategy") or alloc.strategy,  # checked at intake
            past_deadline=alloc.past_deadline,
            dependency_failure=alloc.dependency_failure,
            strategies=config.emergency_protocols.recovery_strategies,
            fallback_agent=config.emergency_protocols.fallback_agent,
            predictor=predictor,
            learner=learner,
            rng=np.random.default_rng([seed, _waiting_digest(tasks)]),
            load_aware=mode != "static",
        )
        statuses = [a["status"] for a in plan.allocations.values()]
        events = [
            {"type": "task_allocated" if a["status"] == "allocated" else f"task_{a['status']}",
             "task_id": a["task_id"], "agent_id": a["agent_id"], "at": now.isoformat()}
            for a in plan.allocations.values()
        ]
        was = state.get("imbalance") or {"active": False, "ratio": 0.0}
        update_imbalance = was
        if plan.backlog_minutes:
            queued = any({**record, **plan.task_patches.get(tid, {})}.get("status") == "queued" for tid, record in tasks.items())
            active, ratio = imbalance(plan.backlog_minutes, bool(was.get("active")), queued=queued)
            fired = active and not was.get("active")
            if fired:
                busiest = max(plan.backlog_minutes, key=plan.backlog_minutes.__getitem__)
                events.append({"type": "workload_imbalance", "ratio": ratio, "busiest_agent": busiest,
                               "backlog_minutes": plan.backlog_minutes, "at": now.isoformat()})
            update_imbalance = {"active": active, "ratio": ratio, "review": fired or bool(was.get("review"))}
        return {
            "imbalance": update_imbalance,
            "allocation_strategy": None,  # a per-run override lasts one run
            "tasks": plan.task_patches,
            "allocations": plan.allocations,
            "events": events,
            "metrics": {
                "allocations": statuses.count("allocated") + statuses.count("queued"),
                "refusals": statuses.count("refused"),
                "tasks_failed": sum(1 for p in plan.task_patches.values() if p.get("status") == "failed"),
                "tasks_held": sum(1 for p in plan.task_patches.values() if p.get("status") == "held"),
                "tasks_degraded": sum(1 for p in plan.task_patches.values() if p.get("status") == "degraded"),
            },
        }

    return allocator


def _waiting_digest(tasks: dict[str, dict[str, Any]]) -> int:
    """A stable number for the set of tasks waiting to be placed (the allocator's random seed)."""
    waiting = sorted(t for t, r in tasks.items() if r.get("status") in WAITING)
    return int.from_bytes(hashlib.sha256("\n".join(waiting).encode()).digest()[:8], "big")
