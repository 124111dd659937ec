"""The outcome outbox: how task runs on the LangGraph API server report back in batches.

On the server, every run on one thread waits for the one before it, and the server's queue
polls about every 0.5 s: one control run per finished task would cap the orchestra at about two
outcomes per second, however many workers run tasks. So a finished task run *posts* its outcome
to the Store (:data:`OUTBOX_NAMESPACE` + the orchestra thread, keyed by its own thread) and
enqueues a control run only when none is pending on the orchestra thread; the next control run
collects every outcome posted so far (:func:`acollect`).

Exactly once: an outcome is applied only while its task is ``running`` on that thread (the
monitor's rule), so an item collected twice changes nothing. Items are deleted by the first run
that finds them already applied (never by the run that applies them: a run that fails after
collecting must find them again), so the outbox holds at most about one batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langgraph.store.base import BaseStore, PutOp

from stellar_graph.records import TaskOutcome

__all__ = ["OUTBOX_NAMESPACE", "acollect", "apost"]

OUTBOX_NAMESPACE = ("stellar_graph", "outbox")
_PAGE = 1_000


async def apost(store: BaseStore, orchestra_thread: str, outcome: TaskOutcome) -> None:
    """Post one task run's outcome for the orchestra thread's next control run."""
    await store.aput((*OUTBOX_NAMESPACE, orchestra_thread), str(outcome["thread_id"]), dict(outcome), index=False)


async def acollect(
    store: BaseStore, orchestra_thread: str, tasks: Mapping[str, Mapping[str, Any]]
) -> list[TaskOutcome]:
    """The posted outcomes whose task is still running on that run's thread (to apply now);
    the others were applied by an earlier control run and are deleted."""
    namespace = (*OUTBOX_NAMESPACE, orchestra_thread)
    fresh: list[TaskOutcome] = []
    stale: list[str] = []
    offset = 0
    while True:
        items = await store.asearch(namespace, limit=_PAGE, offset=offset)
        for item in items:
            task = tasks.get(str(item.value.get("task_id"))) or {}
            run = task.get("run") or {}
            if task.get("status") == "running" and run.get("thread_id") == item.key:
                fresh.append(TaskOutcome(**item.value))  # type: ignore[typeddict-item]
            else:
                stale.append(item.key)
        if len(items) < _PAGE:
            break
        offset += _PAGE
    if stale:
        await store.abatch([PutOp(namespace, key, None) for key in stale])
    return fresh
