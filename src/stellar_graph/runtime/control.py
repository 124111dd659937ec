"""`OrchestraRuntime`: feeds events to the control graph in short runs and runs the task runs.

The control thread runs one control run at a time (two overlapping runs on one LangGraph thread
silently lose updates). Events that arrive while a run is in flight wait, and the next run takes
all of them at once: under load the orchestra makes fewer, larger decisions instead of falling
behind. Each caller's event is checked against the state *plus the events ahead of it in the
same run* (``check``), so two callers racing with one task id get one allocation and one
:class:`~stellar_graph.errors.DuplicateTaskError`, never a silent drop; and a run that fails is
retried event by event, so one caller's bad input never fails another's.

Task runs go to the :class:`~stellar_graph.runtime.runners.LocalRunner`; each finished run
comes back as a ``task_outcomes`` event. On start-up, an unfinished control run is completed and
every task the state says is ``running`` is resumed (or, if its run had finished, delivered
without calling the agent again).

Example:
    >>> runtime = OrchestraRuntime(control_app, task_app, thread_id="demo")  # doctest: +SKIP
    >>> await runtime.start()                                                # doctest: +SKIP
    >>> await runtime.submit({"register_agents": [...], "submit_tasks": [...]})  # doctest: +SKIP
    >>> await runtime.wait_idle()                                            # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import inspect
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.types import Command

from stellar_graph.errors import OrchestrationError
from stellar_graph.models import OrchestraRequest, parse_model
from stellar_graph.ops.maintenance import prune_checkpoints
from stellar_graph.records import RunHandle, TaskOutcome
from stellar_graph.runtime.context import OrchestraContext
from stellar_graph.runtime.lease import Lease
from stellar_graph.runtime.runners import LocalRunner

__all__ = ["EventCheck", "OrchestraRuntime"]

logger = logging.getLogger(__name__)

RECURSION_LIMIT = 10_000
RETIRED_MEMORY = 10_000
EVENTS_NAMESPACE = ("stellar_graph", "events_delivered")
"""Store item per orchestra thread: the id of the last event handed to ``on_event`` (the outbox
cursor). Events are handed over after their run commits; a process killed in between hands them
over after its restart, with the same ids (``event_id``), so receivers can drop repeats."""
CONTROL_DURABILITY = "exit"
"""Control runs checkpoint once, at their end. They take milliseconds and are replayable: a run
cut short by a crash left nothing behind, its caller never got an answer, and the outcomes it
carried are delivered again on restart (the task runs' threads still hold them). Per-step
checkpoints would copy the whole control state five times per run for nothing."""
EventCheck = Callable[[Mapping[str, Any]], None]
"""Validates one event against the runtime's state and the input merged ahead of it; raises."""
_LISTS = ("submit_tasks", "register_agents", "start_collaborations", "set_agent_health", "escalate_tasks",
          "deliver_messages", "task_outcomes")


@dataclass
class _Event:
    payload: Any
    future: asyncio.Future[dict[str, Any]]
    check: EventCheck | None = None


@dataclass
class _Status:
    paused: bool = False
    intake_open: bool = True
    in_flight: bool = False
    runs: int = 0
    events: int = 0
    held: list[_Event] = field(default_factory=list)


class OrchestraRuntime:
    """One orchestra thread, live: short control runs over batched events, task runs beside them.

    Args:
        control: the compiled control graph (``create_orchestra(...).compile(...)``).
        tasks: the compiled task graph (``create_task_graph(...).compile(...)``), same checkpointer.
        thread_id: the orchestra's thread.
        durability: LangGraph durability of the task runs (``persistence.durability``; a finished
            model call is never repeated after a crash in any mode); control runs always use
            :data:`CONTROL_DURABILITY`.
        on_event: called with each event a control run emits (with its ``event_id``).
        extra_input: called inside the control lease before each control run, with this
            process's view of the state and whether it was just read from the checkpoint; returns
            input to add (the facade's bus mail), or ``None`` to be called again with the latest
            checkpoint's state (it needs what another process changed).
        committed: called with that extra input once the run that carried it has committed.
        prune_every: every this many control runs, prune the control thread's checkpoint history
            to its latest checkpoint (``0``: keep it all).
        lease: excludes other processes on the same database (:mod:`stellar_graph.runtime.lease`):
            held around each control run, and claimed for each task run.
    """

    def __init__(
        self,
        control: Any,
        tasks: Any,
        *,
        thread_id: str,
        durability: str = "exit",
        on_event: Callable[[dict[str, Any]], Awaitable[None] | None] | None = None,
        extra_input: Callable[[Mapping[str, Any], bool], dict[str, Any] | None] | None = None,
        committed: Callable[[dict[str, Any]], None] | None = None,
        prune_every: int = 0,
        lease: Lease | None = None,
    ) -> None:
        self.control, self.thread_id, self.durability = control, thread_id, durability
        self.prune_every = prune_every
        self.lease = lease or Lease()
        self.runner = LocalRunner(tasks, self._deliver, durability=durability, on_done=self._run_finished, lease=self.lease)
        self.state: dict[str, Any] = {}
        """The control thread's latest values (refreshed after every control run)."""
        self.retired: dict[str, str] = {}
        """Id -> status of finished tasks the control runs of this process moved off the board
        (the newest :data:`RETIRED_MEMORY`): a submission checked against the history before one
        of them left the board is checked against this too."""
        self._on_event = on_event
        self.node_timings: dict[str, dict[str, float]] = {}
        """Node name -> ``{"seconds", "steps"}`` of the control runs since start (diagnostics)."""
        self.listeners: list[Callable[[dict[str, Any]], object]] = []
        """Called with every ``updates`` chunk of every control run (node name -> update)."""
        self._extra_input, self._committed = extra_input, committed
        self._queue: list[_Event] = []
        self._wakeup = asyncio.Event()
        self._changed = asyncio.Condition()
        self._status = _Status()
        self._loop: asyncio.Task[None] | None = None
        self._replay: list[dict[str, Any]] = []
        self._cursor: asyncio.Task[None] | None = None
        self._notifying: set[asyncio.Task[None]] = set()
        self._current: asyncio.Task[Any] | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Read the thread, finish a control run a killed process left unfinished, resume task runs."""
        _freeze_startup_objects()
        snapshot = await self.control.aget_state(self._config())
        self.state = dict(snapshot.values or {})
        self._replay = await self._undelivered()  # handed over with the next run's events
        self._loop = asyncio.create_task(self._work(), name=f"control-{self.thread_id}")
        if snapshot.next and not snapshot.interrupts:
            logger.warning("finishing an unfinished control run on %s (next: %s)", self.thread_id, snapshot.next)
            await self.submit(None)
        await self.runner.start(self.running_handles())

    async def close(self) -> None:
        """Stop the control loop (call :meth:`wait_idle` first for a graceful stop)."""
        if self._loop is not None:
            self._loop.cancel()
            await asyncio.gather(self._loop, return_exceptions=True)
            self._loop = None
        if self._cursor is not None:
            await asyncio.gather(self._cursor, return_exceptions=True)
        await self.runner.cancel_all()

    def running_handles(self) -> list[RunHandle]:
        """The run handles of the tasks the state says are running."""
        tasks = (self.state.get("tasks") or {}).values()
        return [t["run"] for t in tasks if t.get("status") == "running" and t.get("run")]

    # -- events ------------------------------------------------------------------------------
    async def submit(self, payload: Any, *, check: EventCheck | None = None, wait: bool = True) -> dict[str, Any]:
        """Queue an event (a control-graph input dict, ``None`` to resume, or a ``Command``).

        Returns:
            The control thread's values after the run that applied the event (``wait=True``),
            else the values known now.

        Raises:
            InvalidInputError: the input's shape is wrong (:class:`~stellar_graph.models.OrchestraRequest`);
                nothing was queued.
            OrchestrationError: the intake is closed (emergency shutdown).
            Exception: what ``check`` or the control run raised for this event.
        """
        if payload is not None and not isinstance(payload, Command):
            parse_model(OrchestraRequest, payload, kind="orchestra input")
        if not self._status.intake_open and not _is_outcome(payload):
            raise OrchestrationError(
                "The orchestra has stopped taking new work (emergency shutdown). Fix: start a new "
                "StellarOrchestra on the same data to resume; unfinished work continues there."
            )
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._queue.append(_Event(payload, future, check))
        self._status.events += 1
        self._wakeup.set()
        if not wait:
            future.add_done_callback(lambda f: f.cancelled() or f.exception())
            return self.state
        return await future

    async def run(self, payload: Any) -> dict[str, Any]:
        """Submit one event; once idle (every task run it led to finished), return the control
        graph's output (its output schema's keys of the state, as ``ainvoke`` would)."""
        await self.submit(payload)
        await self.wait_idle()
        keys = self.control.output_channels
        keys = [keys] if isinstance(keys, str) else keys
        return {k: v for k, v in self.state.items() if k in keys}

    async def wait_idle(self) -> None:
        """Wait until no event is queued, no control run and no task run is in flight."""
        async with self._changed:
            await self._changed.wait_for(self.idle)

    async def wait_for(self, predicate: Callable[[dict[str, Any]], bool]) -> None:
        """Wait until ``predicate(state)`` holds or nothing more can happen by itself (idle)."""
        async with self._changed:
            await self._changed.wait_for(lambda: predicate(self.state) or self.idle())

    def idle(self) -> bool:
        """True when nothing is queued or in flight (held events while paused count as queued)."""
        status = self._status
        return not (self._queue or status.held or status.in_flight or self.runner.live)

    # -- operations --------------------------------------------------------------------------
    def pause(self) -> None:
        """Hold control runs (maintenance): events are still accepted and wait, in order."""
        self._status.paused = True

    def resume(self) -> None:
        """Let held control runs proceed."""
        self._status.paused = False
        self._wakeup.set()

    @property
    def paused(self) -> bool:
        """True while control runs are held."""
        return self._status.paused

    async def stop_intake(self, *, cancel_current: bool) -> None:
        """Refuse new work; optionally cancel the control run and the task runs in flight (their
        finished steps are checkpointed and a restart resumes them). Held events fail."""
        self._status.intake_open = False
        self.runner.closed = True
        if cancel_current:
            if self._current is not None:
                self._current.cancel()
            await self.runner.cancel_all()
        for event in [*self._queue, *self._status.held]:
            if not _is_outcome(event.payload) and not event.future.done():
                event.future.set_exception(OrchestrationError("not started: emergency shutdown stopped the intake"))
        self._queue = [e for e in self._queue if _is_outcome(e.payload)]
        self._status.held.clear()
        self._status.paused = False
        self._wakeup.set()
        await self._notify()

    def status(self) -> dict[str, Any]:
        """Started, loop alive, control run in flight, queued events (``queued_requests``: those
        not task outcomes, which an emergency stop refuses), task runs live, paused, intake."""
        status = self._status
        return {
            "started": self._loop is not None,
            "worker_alive": self._loop is not None and not self._loop.done(),
            "run_in_flight": status.in_flight,
            "queued_runs": len(self._queue) + len(status.held),
            "queued_requests": sum(not _is_outcome(e.payload) for e in [*self._queue, *status.held]),
            "task_runs_live": self.runner.live,
            "task_runs_started": self.runner.started,
            "control_runs": status.runs,
            "events": status.events,
            "paused": status.paused,
            "intake_open": status.intake_open,
        }

    # -- internals ---------------------------------------------------------------------------
    def _config(self) -> RunnableConfig:
        return {"configurable": {"thread_id": self.thread_id}, "recursion_limit": RECURSION_LIMIT}

    async def _deliver(self, outcome: TaskOutcome) -> None:
        await self.submit({"task_outcomes": [dict(outcome)]}, wait=False)

    async def _work(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            if self._status.paused:
                self._status.held.extend(self._queue)
                self._queue.clear()
                continue
            events, self._queue = [*self._status.held, *self._queue], []
            self._status.held.clear()
            while events:
                batch, events = _next_batch(events)
                self._status.in_flight = True
                try:
                    await self._apply(batch)
                except Exception as exc:  # never let the loop die: its callers would wait forever
                    logger.exception("control run on %s failed outside the run", self.thread_id)
                    for event in batch:
                        if not event.future.done():
                            event.future.set_exception(exc)
                finally:
                    self._status.in_flight = False
                    await self._notify()
            await self._notify()

    async def _apply(self, batch: list[_Event]) -> None:
        """Run one control run for a batch; on failure, run each event of the batch alone."""
        payload, accepted = self._merge(batch)
        if not accepted:
            return
        with_extra = self._extra_input is not None and isinstance(payload, dict)
        try:
            self._current = asyncio.create_task(self._leased_run(payload, with_extra))  # stop_intake may cancel it
            events, extra = await self._current
            if extra and self._committed is not None:
                self._committed(extra)
        except (Exception, asyncio.CancelledError) as exc:
            current = asyncio.current_task()
            if isinstance(exc, asyncio.CancelledError) and current is not None and current.cancelling():
                raise  # the loop itself is being stopped
            self._current = None
            if isinstance(exc, Exception):
                await self._clear_inputs()  # a failed run must not leave its input for the next one
            await self._refresh()
            if len(accepted) > 1:
                for event in accepted:
                    await self._apply([event])
                return
            error = exc if isinstance(exc, Exception) else OrchestrationError("control run cancelled by emergency shutdown")
            accepted[0].future.set_exception(error)
            return
        self._current = None
        await self._emit(events)  # after the commit: handlers see the state the events describe
        for event in accepted:
            if not event.future.done():
                event.future.set_result(self.state)

    def _merge(self, batch: list[_Event]) -> tuple[Any, list[_Event]]:
        if len(batch) == 1 and not isinstance(batch[0].payload, dict):
            return batch[0].payload, batch  # a resume or a Command runs alone
        merged: dict[str, Any] = {}
        accepted: list[_Event] = []
        for event in batch:
            try:
                if event.check is not None:
                    event.check(merged)
            except Exception as exc:
                event.future.set_exception(exc)
                continue
            for key, value in event.payload.items():
                merged[key] = [*merged.get(key, []), *value] if key in _LISTS else value
            accepted.append(event)
        return merged, accepted

    async def _leased_run(self, payload: Any, with_extra: bool) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """One control run under the control lease (other processes' runs wait), with the extra
        input added; then the state it committed and, every ``prune_every`` runs, the pruned
        history. Returns the run's events and the extra input it carried."""
        async with self.lease.control(self.thread_id):
            extra = await self._take_extra() if with_extra else {}
            if extra:
                payload = {**payload, **{k: [*payload.get(k, []), *v] for k, v in extra.items()}}
            events, values = await self._run(payload)
            if values is None:
                await self._refresh()
            else:  # what the run committed (its last step's values), without reading it back
                self._adopt(values)
            await self._prune()
        return events, extra

    async def _take_extra(self) -> dict[str, Any]:
        assert self._extra_input is not None
        extra = self._extra_input(self.state, False)
        if extra is None:  # it needs what another process changed since this one's last run
            await self._refresh()
            extra = self._extra_input(self.state, True)
        return extra or {}

    async def _run(self, payload: Any) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        context = OrchestraContext(runner=self.runner)
        stream = self.control.astream(
            payload, self._config(), stream_mode=["updates", "values"], durability=CONTROL_DURABILITY,
            context=context,
        )
        self._status.runs += 1
        events: list[dict[str, Any]] = []
        values: dict[str, Any] | None = None
        mark = time.perf_counter()
        async for mode, chunk in stream:
            if mode == "values":
                values = chunk
                continue
            mark = self._time_nodes(chunk, mark)
            for listener in self.listeners:
                listener(chunk)
            for update in chunk.values():
                if isinstance(update, dict):
                    events.extend(update.get("events") or [])
        return events, values

    def _time_nodes(self, updates: Mapping[str, Any], since: float) -> float:
        """Charge the time since the previous step ended to the nodes of this step (LangGraph's
        own per-step work included; cheaper than streaming every task's start and end)."""
        now = time.perf_counter()
        names = [str(n) for n in updates if not str(n).startswith("__")]  # not __interrupt__
        for name in names:
            row = self.node_timings.setdefault(name, {"seconds": 0.0, "steps": 0})
            row["seconds"] += (now - since) / len(names)
            row["steps"] += 1
        return now

    async def _emit(self, events: list[dict[str, Any]]) -> None:
        """Hand a committed run's events to ``on_event``, each with its idempotency key, then
        record the last one handed over (the outbox cursor in the Store)."""
        events, self._replay = [*self._replay, *events], []
        if self._on_event is None or not events:
            return
        handling: list[Awaitable[Any]] = []
        for event in events:
            outcome = self._on_event({"event_id": self._event_id(event), **event})
            if inspect.isawaitable(outcome):
                handling.append(outcome)
        # The cursor moves once the handlers are done (in order, in the background: a handler may
        # call back into the orchestra, so the control loop never waits for one).
        self._cursor = asyncio.create_task(self._advance(self._cursor, handling, self._event_id(events[-1])))

    async def _advance(self, previous: asyncio.Task[None] | None, handling: list[Awaitable[Any]], last: str) -> None:
        if previous is not None:
            await previous
        await asyncio.gather(*handling, return_exceptions=True)
        store = getattr(self.control, "store", None)
        if store is not None:
            await store.aput(EVENTS_NAMESPACE, self.thread_id, {"last": last})

    async def _undelivered(self) -> list[dict[str, Any]]:
        """Events of committed runs that a killed process never handed over (after the cursor)."""
        store = getattr(self.control, "store", None)
        ring = self.state.get("events") or []
        if store is None or not ring:
            return []
        item = await store.aget(EVENTS_NAMESPACE, self.thread_id)
        ids = [self._event_id(e) for e in ring]
        last = item.value.get("last") if item is not None else None
        if last is None:
            return list(ring)  # the first run committed, its events were never handed over
        if last not in ids:
            return []  # the ring moved past the cursor: those events are gone from the state
        return list(ring[len(ids) - ids[::-1].index(last):])

    def _event_id(self, event: Mapping[str, Any]) -> str:
        """An idempotency key: the same event re-emitted after a restart gets the same id."""
        stable = {k: v for k, v in event.items() if k not in {"at", "created_at"}}
        text = json.dumps([self.thread_id, stable], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    async def _clear_inputs(self) -> None:
        """Empty the input keys a failed control run left in the thread's state (a run that raises
        writes nothing, so its input would be read again by every later run)."""
        try:
            await self.control.aupdate_state(self._config(), dict.fromkeys(_LISTS, []))
        except Exception:
            logger.exception("clearing the input of a failed control run on %s failed", self.thread_id)

    async def _refresh(self) -> None:
        snapshot = await self.control.aget_state(self._config())
        self._adopt(snapshot.values or {})

    def _adopt(self, values: Mapping[str, Any]) -> None:
        before, self.state = self.state.get("tasks") or {}, dict(values)
        board = self.state.get("tasks") or {}
        for tid in before.keys() - board.keys():
            self.retired[tid] = str(before[tid].get("status"))
        while len(self.retired) > RETIRED_MEMORY:
            del self.retired[next(iter(self.retired))]

    async def _prune(self) -> None:
        """Every ``prune_every`` runs, keep only the control thread's latest checkpoint: the live
        state is all a control run reads; finished work lives in task threads and the Store."""
        saver = getattr(self.control, "checkpointer", None)
        if not self.prune_every or self._status.runs % self.prune_every or not isinstance(saver, BaseCheckpointSaver):
            return
        try:
            await prune_checkpoints(saver, self.thread_id)
        except Exception:  # pruning is housekeeping: the next round tries again
            logger.exception("pruning the control thread %s failed", self.thread_id)

    def _run_finished(self) -> None:
        if self._loop is not None and not self._loop.done():
            task = self._loop.get_loop().create_task(self._notify())
            self._notifying.add(task)  # held until done (the loop keeps only weak references)
            task.add_done_callback(self._notifying.discard)

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()


_frozen = False


def _freeze_startup_objects() -> None:
    """Once per process: collect, then ``gc.freeze()`` what exists (imported libraries, compiled
    graphs: ~180,000 objects). A full collection of them takes ~120 ms, and one comes every few
    hundred control runs, stalling every control run and task run in flight (the p99 of
    ``tools/bench_live.py``); frozen, it takes under a millisecond. ``gc.unfreeze()`` undoes it."""
    global _frozen
    if not _frozen:
        _frozen = True
        gc.collect()
        gc.freeze()


def _is_outcome(payload: Any) -> bool:
    return isinstance(payload, dict) and set(payload) == {"task_outcomes"}


def _next_batch(events: list[_Event]) -> tuple[list[_Event], list[_Event]]:
    """The leading run of dict events (one control run), or a lone resume/Command."""
    if not isinstance(events[0].payload, dict):
        return events[:1], events[1:]
    if "allocation_strategy" in events[0].payload:
        return events[:1], events[1:]  # a per-run strategy applies to its own events only
    n = 1
    while n < len(events) and isinstance(events[n].payload, dict) and "allocation_strategy" not in events[n].payload:
        n += 1
    return events[:n], events[n:]
