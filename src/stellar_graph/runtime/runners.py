"""Runners: where task runs execute. In-process by default (asyncio, the orchestra's checkpointer).

A runner is told which task runs the control graph started (:class:`~stellar_graph.records.RunHandle`)
and hands each finished run's :class:`~stellar_graph.records.TaskOutcome` to its ``deliver``
callback, which turns it into a control event. Starting is idempotent: a handle whose run is
already live is ignored, and a run whose thread already holds a finished report (a restart after
the run ended but before its outcome was applied) is delivered without calling the agent again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any, Protocol

from langchain_core.runnables import RunnableConfig

from stellar_graph.records import AGENT_CALLS_NAMESPACE, RunHandle, TaskOutcome
from stellar_graph.runtime.lease import Lease

__all__ = ["LocalRunner", "OutcomeSink", "ServerRunner", "TaskRunner"]

logger = logging.getLogger(__name__)

OutcomeSink = Callable[[TaskOutcome], Awaitable[None]]


class TaskRunner(Protocol):
    """Starts task runs and reports their outcomes."""

    async def start(self, handles: Sequence[RunHandle]) -> None:
        """Start (or resume) each handle's run unless it is already live; never waits for one."""

    @property
    def live(self) -> int:
        """Task runs in flight."""


class LocalRunner:
    """Task runs as asyncio tasks in this process, on the task graph compiled with the
    orchestra's checkpointer (so each run is a thread of its own that a restart resumes).

    Args:
        app: the compiled task graph.
        deliver: called with each finished run's outcome.
        durability: LangGraph durability of the task runs (``exit``: one checkpoint per run; a
            finished model call is not repeated after a crash in any mode, see
            ``AGENT_CALLS_NAMESPACE``).
    """

    def __init__(
        self,
        app: Any,
        deliver: OutcomeSink,
        *,
        durability: str = "exit",
        on_done: Callable[[], object] | None = None,
        lease: Lease | None = None,
    ) -> None:
        self.app = app
        self.lease = lease or Lease()
        self.deliver = deliver
        self.on_done = on_done
        self.durability = durability
        self._live: dict[str, asyncio.Task[None]] = {}
        self.closed = False
        """Set by an emergency stop: nothing new starts (the state keeps the handles for a restart)."""
        self.started = 0
        """Task runs started or resumed by this runner (a counter, for metrics and tests)."""

    @property
    def live(self) -> int:
        """Task runs in flight."""
        return len(self._live)

    async def start(self, handles: Sequence[RunHandle]) -> None:
        """Start each handle's run as an asyncio task, unless it is running already."""
        for handle in handles:
            thread = handle["thread_id"]
            if thread in self._live or self.closed:
                continue
            if not await self.lease.claim(thread):  # another live process runs it
                logger.info("task run %s is running in another process", thread)
                continue
            task = asyncio.get_running_loop().create_task(self._run(handle), name=f"task-run-{handle['task_id']}")
            self._live[thread] = task
            task.add_done_callback(partial(self._finished, thread))
            self.started += 1

    def _finished(self, thread: str, _task: object = None) -> None:
        self._live.pop(thread, None)
        if self.on_done is not None:
            self.on_done()

    async def cancel_all(self) -> None:
        """Cancel the runs in flight (their finished steps are checkpointed; a restart resumes them)."""
        tasks = list(self._live.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def wait(self) -> None:
        """Wait until no task run is in flight."""
        while self._live:
            await asyncio.gather(*list(self._live.values()), return_exceptions=True)

    async def _run(self, handle: RunHandle) -> None:
        try:
            await self._run_claimed(handle)
        finally:
            await self.lease.release(handle["thread_id"])

    async def _run_claimed(self, handle: RunHandle) -> None:
        config: RunnableConfig = {"configurable": {"thread_id": handle["thread_id"]}}
        try:
            report = await self._report(handle, config)
        except Exception as exc:  # the run itself broke (not the agent: its errors are reports)
            logger.exception("task run %s of task %s failed", handle["thread_id"], handle["task_id"])
            report = {"task_id": handle["task_id"], "status": "failed", "agent_error": True,
                      "agent_id": handle["input"]["agent"]["agent_id"], "result": "", "usage": {},
                      "error": f"task run failed: {type(exc).__name__}: {exc}"}
        if report is None:
            logger.info("task run %s is waiting on an interrupt", handle["thread_id"])
            return
        await self.deliver(
            TaskOutcome(task_id=handle["task_id"], attempt=handle["attempt"], thread_id=handle["thread_id"], report=report)
        )

    async def _report(self, handle: RunHandle, config: RunnableConfig) -> dict[str, Any] | None:
        snapshot = await self.app.aget_state(config)
        values = snapshot.values or {}
        if values.get("report") and not snapshot.next:
            return dict(values["report"])  # finished before a restart: do not call the agent again
        payload = None if snapshot.next else handle["input"]  # resume where it stopped
        out = await self.app.ainvoke(payload, config, durability=self.durability)
        report = out.get("report")
        if report and report.get("simulated") is False and self.app.store is not None:
            # The run's end is checkpointed: its saved model answer is not needed any more.
            await self.app.store.adelete(AGENT_CALLS_NAMESPACE, handle["thread_id"])
        return dict(report) if report else None


class ServerRunner:
    """Task runs as background runs on the LangGraph API server that serves the orchestra.

    Each run goes to the server's task queue on its own thread (``if_not_exists="create"``), so the
    server's workers execute it (``--n-jobs-per-worker`` of them at once), checkpoint it and show
    it in Studio. The task graph sends its outcome back itself (``report_to``): its last node
    posts it to the Store outbox and enqueues a control run on the orchestra's thread unless one
    is already pending, which collects every outcome posted so far. Nothing here waits for a run: a node that waited
    would hold a worker slot (see ``docs/decisions.md``).

    Args:
        assistant_id: the task graph's name in ``langgraph.json``.
        orchestra_id: the orchestra graph's name in ``langgraph.json`` (where outcomes go).
        url: the server's URL; ``None`` talks to the server this code runs in.
    """

    posts_to_outbox = True
    """Its task runs post their outcomes to the Store outbox (:mod:`stellar_graph.runtime.outbox`)."""

    def __init__(self, *, assistant_id: str = "task", orchestra_id: str = "orchestra", url: str | None = None) -> None:
        self.assistant_id, self.orchestra_id, self.url = assistant_id, orchestra_id, url
        self.started = 0

    @property
    def live(self) -> int:
        """Runs are the server's to count; this process holds none."""
        return 0

    async def start(self, handles: Sequence[RunHandle]) -> None:
        """Create one background run per handle; a run already on its thread is left alone."""
        from langgraph_sdk import get_client
        from langgraph_sdk.errors import ConflictError

        client = get_client(url=self.url)
        for handle in handles:
            report_to = {"thread_id": handle["orchestra_thread"], "assistant_id": self.orchestra_id}
            try:
                payload: dict[str, Any] = {**handle["input"], "report_to": report_to}
                await client.runs.create(
                    handle["thread_id"], self.assistant_id, input=payload,
                    metadata={"task_id": handle["task_id"], "attempt": handle["attempt"]},
                    if_not_exists="create", multitask_strategy="reject",
                )
                self.started += 1
            except ConflictError:  # started before a restart of this control run: keep that one
                logger.info("task run %s is already running", handle["thread_id"])
