"""``optimizer``: learn from finished work, and review the strategy when it is due."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

from langchain_core.runnables import RunnableConfig
from langgraph.runtime import Runtime

from stellar_graph.board import FINISHED
from stellar_graph.config import OrchestraConfig
from stellar_graph.history import aretire, plan_retirement
from stellar_graph.memory import AGENT_STATS_NAMESPACE
from stellar_graph.optimizer import SystemOptimizer
from stellar_graph.state import OrchestraState

__all__ = ["AGENT_STATS_NAMESPACE", "make_optimizer", "route_after_optimizer"]


def make_optimizer(config: OrchestraConfig, clock: Callable[[], datetime]) -> Callable[..., Any]:
    """Build the optimizer node.

    Outcomes of tasks not yet learned from update the learned state in the LangGraph Store
    (cross-thread memory): per-agent totals, the completion-time calibration and, in
    ``adaptive`` mode, the success posteriors and the replay log. Then
    ``orchestrate_system_optimization`` reviews the score weighting if the schedule says so or
    the run ended with its workload imbalanced (``system_optimized`` event). Without a store,
    nothing is learned across runs and the counters stay in the metrics only.
    """

    async def optimizer(state: OrchestraState, config: RunnableConfig, runtime: Runtime[Any]) -> dict[str, Any]:
        update = await _learn(state, runtime)
        if runtime.store is not None:  # retire finished work to the Store: the state stays bounded
            thread = str((config.get("configurable") or {}).get("thread_id", ""))
            await _retire(update, state, runtime.store, thread, clock())
        return update

    async def _learn(state: OrchestraState, runtime: Runtime[Any]) -> dict[str, Any]:
        tasks = state.get("tasks") or {}
        finished = [t for t in tasks.values() if t.get("status") in FINISHED and not t.get("learned")]
        fresh = [t for t in finished if t.get("agent_id")]
        update: dict[str, Any] = {
            "tasks": {t["id"]: {"learned": True} for t in finished},
            "metrics": {"optimizer_runs": 1, **_latency(finished)},
        }
        if runtime.store is None:
            return update
        imbalance = state.get("imbalance") or {}
        opt = SystemOptimizer(config, runtime.store, clock=clock)
        report, update["learning"] = await opt.after_run(fresh, state.get("allocations") or {}, imbalance=bool(imbalance.get("review")))
        if imbalance.get("review"):
            update["imbalance"] = {**imbalance, "review": False}
        if report is not None:
            event = {"type": "system_optimized", **{k: report[k] for k in ("reason", "improvement_percentage", "before", "after", "actions", "at")}}
            update["events"] = [event]
            update["metrics"]["optimizations"] = 1
        return update

    return optimizer


async def _retire(update: dict[str, Any], state: OrchestraState, store: Any, thread: str, now: datetime) -> None:
    """Move finished, learned tasks beyond the newest few out of the state into the Store."""
    tasks = {tid: {**t, **(update["tasks"].get(tid) or {})} for tid, t in (state.get("tasks") or {}).items()}
    allocations = state.get("allocations") or {}
    plan = plan_retirement(tasks, allocations, now=now)
    if not plan.task_ids:
        return
    await aretire(store, thread, plan, tasks, allocations)
    removed = plan.update()
    update["tasks"] = {**update["tasks"], **removed["tasks"]}
    update["allocations"] = removed["allocations"]
    for key, value in removed["metrics"].items():
        update["metrics"][key] = update["metrics"].get(key, 0) + value


def _latency(finished: list[dict[str, Any]]) -> dict[str, float]:
    """End-to-end latency (submitted -> finished) of newly finished tasks, as metric counters."""
    total, samples = 0.0, 0
    for t in finished:
        if t.get("finished_at") and t.get("submitted_at"):
            delta = datetime.fromisoformat(t["finished_at"]) - datetime.fromisoformat(t["submitted_at"])
            total, samples = total + delta.total_seconds(), samples + 1
    return {"latency_seconds_total": total, "latency_samples": samples}


def route_after_optimizer(state: OrchestraState) -> Literal["escalation", "__end__"]:
    """A human for escalated tasks; else the control run ends."""
    tasks = (state.get("tasks") or {}).values()
    return "escalation" if any(t.get("status") == "escalating" for t in tasks) else "__end__"
