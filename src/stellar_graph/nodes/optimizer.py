"""``optimizer``: learn from finished work. At this stage it records per-agent outcomes in the Store."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langgraph.runtime import Runtime

from stellar_graph.board import FINISHED
from stellar_graph.memory import AGENT_STATS_NAMESPACE, load_predictor, save_predictor
from stellar_graph.state import OrchestraState

__all__ = ["AGENT_STATS_NAMESPACE", "make_optimizer"]


def make_optimizer() -> Callable[..., Any]:
    """Build the optimizer node.

    Outcomes of tasks not yet learned from are added to per-agent statistics in the LangGraph
    Store (cross-thread memory: completions, failures, simulated minutes, tokens), and their
    (estimated, actual) durations recalibrate the completion-time predictor kept there. Without a
    store the counters stay in the metrics only.
    """

    async def optimizer(state: OrchestraState, runtime: Runtime[Any]) -> dict[str, Any]:
        tasks = state.get("tasks") or {}
        fresh = [t for t in tasks.values() if t.get("status") in FINISHED and t.get("agent_id") and not t.get("learned")]
        if runtime.store is not None and fresh:
            await _record_outcomes(runtime.store, fresh)
            await _recalibrate(runtime.store, fresh)
        return {"tasks": {t["id"]: {"learned": True} for t in fresh}, "metrics": {"optimizer_runs": 1}}

    return optimizer


async def _recalibrate(store: Any, finished: list[dict[str, Any]]) -> None:
    predictor = await load_predictor(store)
    observed = 0
    for task in finished:
        actual = (task.get("report") or {}).get("duration_minutes")
        if task.get("estimated_minutes") and actual and actual > 0:
            predictor.observe(task["agent_id"], float(task["estimated_minutes"]), float(actual))
            observed += 1
    if observed:
        await save_predictor(store, predictor)


async def _record_outcomes(store: Any, finished: list[dict[str, Any]]) -> None:
    by_agent: dict[str, list[dict[str, Any]]] = {}
    for task in finished:
        by_agent.setdefault(task["agent_id"], []).append(task)
    for agent_id, done in by_agent.items():
        item = await store.aget(AGENT_STATS_NAMESPACE, agent_id)
        stats = dict(item.value) if item else {"completed": 0, "failed": 0, "minutes": 0.0, "tokens": 0}
        for task in done:
            report = task.get("report") or {}
            usage = report.get("usage") or {}
            stats["completed" if task["status"] == "completed" else "failed"] += 1
            stats["minutes"] += float(report.get("duration_minutes") or 0.0)
            stats["tokens"] += int(usage.get("input_tokens", 0)) + int(usage.get("output_tokens", 0))
        await store.aput(AGENT_STATS_NAMESPACE, agent_id, stats)
