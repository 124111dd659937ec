"""Task history: finished tasks leave the control state for the LangGraph Store.

The control state holds active work plus the newest :data:`RECENT_FINISHED` finished tasks, so
each checkpoint stays the same size however long the orchestra lives. A retired task's full
record (and its allocation) goes to the Store under :data:`HISTORY_NAMESPACE` + the orchestra
thread, where ``monitor_task_execution``, duplicate-id checks and dependencies find it; its
counts go to the ``pruned_*`` metric counters and a per-thread summary, as maintenance's pruning
of the board does (``ops.maintenance.plan_board_prune`` picks both).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from langgraph.store.base import BaseStore, GetOp, Item, PutOp

if TYPE_CHECKING:
    from stellar_graph.ops.maintenance import BoardPrunePlan

__all__ = [
    "HISTORY_NAMESPACE",
    "RECENT_FINISHED",
    "SUMMARY_NAMESPACE",
    "alookup",
    "aprune_task_threads",
    "aretire",
    "asummary",
    "plan_retirement",
]

HISTORY_NAMESPACE = ("stellar_graph", "history")
SUMMARY_NAMESPACE = ("stellar_graph", "history_summary")
"""One item per orchestra thread, written only by its control runs (never by the facade)."""
RECENT_FINISHED = 20
"""Finished tasks kept on the board (newest first) so a glance at the state shows recent work."""


def plan_retirement(
    tasks: Mapping[str, Mapping[str, Any]], allocations: Mapping[str, Mapping[str, Any]], *, now: Any
) -> BoardPrunePlan:
    """Finished, learned tasks that no unfinished task depends on, but the newest few."""
    # Imported here: the ops package imports this module.
    from stellar_graph.ops.maintenance import plan_board_prune

    return plan_board_prune(tasks, allocations, now=now, older_than=timedelta(0), keep_recent=RECENT_FINISHED)


async def aretire(
    store: BaseStore,
    thread_id: str,
    plan: BoardPrunePlan,
    tasks: Mapping[str, Mapping[str, Any]],
    allocations: Mapping[str, Mapping[str, Any]],
) -> None:
    """Write the retired tasks to the Store (one batch) and add them to the pruned summary."""
    namespace = (*HISTORY_NAMESPACE, thread_id)
    ops = [
        PutOp(namespace, tid, {"task": dict(tasks[tid]), "allocation": dict(allocations.get(f"alloc-{tid}") or {}),
                               "threads_pruned": False})
        for tid in plan.task_ids
    ]
    from stellar_graph.ops.maintenance import merge_summaries

    summary = merge_summaries(await asummary(store, thread_id), plan.summary)
    await store.abatch([*ops, PutOp(SUMMARY_NAMESPACE, thread_id, summary)])


async def asummary(store: BaseStore | None, thread_id: str) -> dict[str, Any]:
    """Counts and agent time of every task retired from the thread (``merge_summaries`` shape)."""
    if store is None:
        return {}
    item = await store.aget(SUMMARY_NAMESPACE, thread_id)
    return dict(item.value) if item is not None else {}


async def alookup(store: BaseStore | None, thread_id: str, task_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Task id -> ``{"task", "allocation"}`` of the retired ones among ``task_ids``."""
    ids = list(dict.fromkeys(task_ids))
    if store is None or not ids:
        return {}
    items = await store.abatch([GetOp((*HISTORY_NAMESPACE, thread_id), tid) for tid in ids])
    return {tid: dict(item.value) for tid, item in zip(ids, items, strict=True) if isinstance(item, Item)}


async def aprune_task_threads(store: BaseStore, saver: Any, thread_id: str, *, finished_before: str) -> int:
    """Delete the task-run threads of retired tasks finished by ``finished_before`` (ISO time).

    The history item stays (the task's record and allocation); only its runs' checkpoints go.

    Returns:
        How many task threads were deleted.
    """
    from stellar_graph.records import AGENT_CALLS_NAMESPACE, task_thread_id

    namespace, deleted = (*HISTORY_NAMESPACE, thread_id), 0
    while True:
        items = await store.asearch(namespace, filter={"threads_pruned": False}, limit=500)
        due = [i for i in items if str(i.value["task"].get("finished_at") or "") <= finished_before]
        if not due:
            return deleted
        for item in due:
            for run in range(1, int(item.value["task"].get("runs", 0)) + 1):
                await saver.adelete_thread(task_thread_id(thread_id, item.key, run))
                await store.adelete(AGENT_CALLS_NAMESPACE, task_thread_id(thread_id, item.key, run))
                deleted += 1
        await store.abatch([PutOp(namespace, i.key, {**i.value, "threads_pruned": True}) for i in due])
        if len(due) < len(items):
            return deleted
