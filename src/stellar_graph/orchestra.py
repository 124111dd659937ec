"""`StellarOrchestra`: the seed's API (in snake_case, async) over the compiled orchestra graph.

Example:
    >>> async def main():
    ...     async with StellarOrchestra() as orchestra:          # SQLite under .stellar_graph/, simulated agents
    ...         await orchestra.register_agent({"agent_id": "atlas-001", "agent_type": "AtlasAgent",
    ...             "capabilities": ["knowledge_synthesis"], "specializations": ["ethics"]})
    ...         allocation = await orchestra.orchestrate_task({"id": "t1", "description": "...",
    ...             "required_skills": ["ethics"]})
    ...         print(await orchestra.monitor_task_execution(allocation.allocation_id))

One thread holds the orchestra's state. LangGraph runs one run per thread at a time (two
overlapping runs would silently lose updates), so every call is queued and executed in order by
one worker; a call returns when its own part is decided (allocation) or done (monitor).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from datetime import datetime
from typing import Any

from langchain_core.language_models import BaseChatModel
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.store.base import BaseStore
from langgraph.types import Command

from stellar_graph.agents.spec import REFERENCE_TEAM, AgentSpec, AgentTypeRegistry
from stellar_graph.board import allocation_id_for, utc_now
from stellar_graph.bus import AdvancedMessageBus
from stellar_graph.collaboration.facade import CollaborationMixin
from stellar_graph.config import OrchestraConfig
from stellar_graph.errors import OrchestrationError, UnknownAgentError
from stellar_graph.events import EventHandler, EventHub
from stellar_graph.graph import create_orchestra
from stellar_graph.integrations.facade import IntegrationsMixin
from stellar_graph.llm import make_chat_model
from stellar_graph.mail import MailBridge
from stellar_graph.metrics import performance_metrics
from stellar_graph.models import AgentProfile, Allocation
from stellar_graph.ops.facade import OperationsMixin
from stellar_graph.optimizer import SystemOptimizer
from stellar_graph.persistence import open_persistence
from stellar_graph.scoring_tools import create_scoring_tools
from stellar_graph.submission import accept_agents, accept_tasks, check_strategy, known_agent_names
from stellar_graph.task_allocator import TaskAllocator
from stellar_graph.tokens import count_tokens

__all__ = ["StellarOrchestra"]

logger = logging.getLogger(__name__)

RECURSION_LIMIT = 10_000


class StellarOrchestra(CollaborationMixin, OperationsMixin, IntegrationsMixin):
    """The central orchestration engine: register agents, orchestrate tasks, read metrics.

    Args:
        config: an :class:`OrchestraConfig`, a dict or a YAML/TOML path (defaults otherwise).
        model: the agents' chat model; ``None`` uses ``config.llm`` or simulates the agents.
        agents: the agent types the orchestra knows (the Vegapunk reference team by default).
        thread_id: the LangGraph thread holding this orchestra's state.
        checkpointer: use this checkpointer (and ``store``) instead of opening ``config.persistence``.
        store: the LangGraph Store for cross-thread memory.
        seed: simulation seed.
        clock: time source.
    """

    def __init__(
        self,
        config: OrchestraConfig | Mapping[str, Any] | str | None = None,
        *,
        model: BaseChatModel | None = None,
        agents: Sequence[AgentSpec] = REFERENCE_TEAM,
        thread_id: str = "stellar-orchestra",
        checkpointer: BaseCheckpointSaver[Any] | None = None,
        store: BaseStore | None = None,
        seed: int = 0,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.config = OrchestraConfig.load(config)
        self.thread_id = thread_id
        self.agent_types = AgentTypeRegistry(agents)
        self._model = model if model is not None else make_chat_model(self.config.llm)
        self._graph = create_orchestra(
            self.config, model=self._model, agents=agents, seed=seed, clock=clock, extra_tools=self.external_tools
        )
        self._checkpointer, self._store = checkpointer, store
        self._clock = clock
        self._events = EventHub()
        self._stack: AsyncExitStack | None = None
        self._app: Any = None
        self._state: dict[str, Any] = {}
        self._queue: asyncio.Queue[tuple[Any, asyncio.Future[None]]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None
        self._alloc_waiters: dict[str, list[asyncio.Future[dict[str, Any]]]] = {}
        self._mail: MailBridge | None = None
        self._runs_allowed = asyncio.Event()
        self._runs_allowed.set()
        self._intake_open = True
        self._current: asyncio.Task[None] | None = None
        self._handlers_running: set[asyncio.Task[None]] = set()
        self._holding = False
        self.task_allocator = TaskAllocator(self)

    # -- lifecycle -------------------------------------------------------------------------
    async def start_orchestration(self) -> None:
        """Open persistence, compile the graph, and resume work a previous process left unfinished."""
        if self._app is not None:
            return
        self._stack = AsyncExitStack()
        if self._checkpointer is None:
            self._checkpointer, self._store = await self._stack.enter_async_context(
                open_persistence(self.config.persistence)
            )
        self._app = self._graph.compile(checkpointer=self._checkpointer, store=self._store, name="stellar_orchestra")
        snapshot = await self._app.aget_state(self._run_config())
        self._state = dict(snapshot.values or {})
        self._mail = MailBridge.open(self.config)
        self._mail.register((self._state.get("agents") or {}).values())
        self._worker = asyncio.create_task(self._work(), name="stellar-orchestra-worker")
        if snapshot.next:
            logger.warning("resuming an unfinished run on thread %s (next: %s)", self.thread_id, snapshot.next)
            await self._submit(None)

    async def stop_orchestration(self) -> None:
        """Finish queued runs, flush webhooks and notifications, then close persistence."""
        await self.aclose_operations()  # stops monitors and leaves maintenance mode first
        if self._worker is not None:
            await self.wait_idle()
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None
        await self.aclose_integrations()
        if self._mail is not None:
            await self._mail.close()
            self._mail = None
        if self._stack is not None:
            await self._stack.aclose()
            self._stack = None
        self._app = None

    async def __aenter__(self) -> StellarOrchestra:
        await self.start_orchestration()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop_orchestration()

    @property
    def message_bus(self) -> AdvancedMessageBus:
        """The priority message bus; messages to agents reach them with their next task."""
        self._require_started()
        assert self._mail is not None  # set by start_orchestration
        return self._mail.bus

    async def send_priority_message(self, message: Mapping[str, Any]) -> str:
        """Send a message on :attr:`message_bus` (seed API); returns its ``message_id``."""
        return await self.message_bus.send_priority_message(message)

    @property
    def simulated(self) -> bool:
        """True when no chat model is configured and agents run simulated."""
        return self._model is None

    @property
    def app(self) -> Any:
        """The compiled graph (for streaming, ``aget_state`` and Studio-style inspection)."""
        self._require_started()
        return self._app

    # -- agents ----------------------------------------------------------------------------
    async def register_agent(self, profile: AgentProfile | Mapping[str, Any]) -> AgentProfile:
        """Register an agent instance (``atlas-001``) of a known agent type.

        Raises:
            InvalidInputError, DuplicateAgentError, UnknownAgentError: nothing is registered.
        """
        self._require_started()
        record = accept_agents(self._state.get("agents") or {}, [profile], self.agent_types, count_tokens)
        await self._submit({"register_agents": [dict(profile) if isinstance(profile, Mapping) else profile.model_dump(mode="json")]})
        if self._mail is not None:
            self._mail.register(record.values())
        return AgentProfile.model_validate({k: v for k, v in next(iter(record.values())).items() if k in AgentProfile.model_fields})

    def get_agent(self, agent_id: str) -> dict[str, Any]:
        """The registry record of one agent.

        Raises:
            UnknownAgentError: the id is not registered (the message lists those that are).
        """
        agents = self._state.get("agents") or {}
        if agent_id not in agents:
            raise UnknownAgentError(agent_id, list(agents))
        return dict(agents[agent_id])

    def scoring_tools(self) -> list[Any]:
        """The deterministic scorer as LangChain tools over this orchestra's registry."""
        return create_scoring_tools(
            self.registered_agents, weights=self.config.task_allocation.weights, clock=self._clock
        )

    def registered_agents(self) -> dict[str, dict[str, Any]]:
        """Agent id -> registry record (profile, health, prompt tokens)."""
        return dict(self._state.get("agents") or {})

    # -- tasks -----------------------------------------------------------------------------
    async def orchestrate_task(self, task: Any) -> Allocation:
        """Submit one task; return its allocation as soon as the allocator has decided.

        The work itself continues in the background; follow it with :meth:`monitor_task_execution`.
        """
        return (await self.orchestrate_multiple_tasks([task]))[0]

    async def orchestrate_multiple_tasks(self, tasks: Sequence[Any], *, strategy: str | None = None) -> list[Allocation]:
        """Submit a batch (validated as a whole: one bad task rejects the batch, nothing else changes).

        Args:
            tasks: ``Task`` models or dicts.
            strategy: override ``task_allocation.strategy`` for this batch.
        """
        self._require_started()
        check_strategy(strategy)
        raw = [t.model_dump(mode="json") if hasattr(t, "model_dump") else dict(t) for t in tasks]
        known = known_agent_names(self._state.get("agents") or {}, self.agent_types)
        records = accept_tasks(self._state.get("tasks") or {}, raw, count_tokens, now=self._clock(), known_agents=known)
        loop = asyncio.get_running_loop()
        waiters = {tid: loop.create_future() for tid in records}
        for tid, fut in waiters.items():
            self._alloc_waiters.setdefault(tid, []).append(fut)
        payload: dict[str, Any] = {"submit_tasks": raw}
        if strategy is not None:
            payload["allocation_strategy"] = strategy
        run = await self._submit(payload, wait=False)
        run.add_done_callback(lambda f: f.cancelled() or f.exception())  # failures surface via the waiters
        await asyncio.wait([run, *waiters.values()], return_when=asyncio.FIRST_COMPLETED)
        if run.done() and run.exception() is not None:
            raise run.exception()  # type: ignore[misc]
        return [Allocation.model_validate(await fut) for fut in waiters.values()]

    async def monitor_task_execution(self, allocation_id: str, *, wait: bool = True) -> dict[str, Any]:
        """Status, result and timings of an allocation; ``wait`` until the task has finished.

        Raises:
            UnknownAgentError: no such allocation (the message lists known ones).
        """
        self._require_started()
        if wait:
            # Runs continue until no work can progress, so once the queue drains the task is
            # finished, or waiting on something only a later call can change (capacity, agents).
            await self._queue.join()
        else:
            await self._refresh()
        task = self._task_for(allocation_id)
        return _execution_view(task, self._state.get("allocations", {}).get(allocation_id, {}))

    async def submit_run(self, payload: Mapping[str, Any]) -> None:
        """Queue one run of the orchestra graph with ``payload`` as input and wait for it.

        The building block of the facade's methods (and of mixins): runs on the orchestra's
        thread execute one at a time, in order.
        """
        self._require_started()
        await self._submit(dict(payload))

    async def wait_idle(self) -> None:
        """Wait until every queued run, and every event handler they triggered, has finished."""
        while True:
            await self._queue.join()
            if not self._handlers_running:
                return
            await asyncio.gather(*list(self._handlers_running), return_exceptions=True)

    # -- recovery --------------------------------------------------------------------------
    def pending_escalations(self) -> dict[str, dict[str, Any]]:
        """Tasks waiting for a human decision (the recovery ladder's ``escalate`` rung)."""
        return {tid: dict(t) for tid, t in (self._state.get("tasks") or {}).items() if t.get("status") == "escalating"}

    async def resolve_escalations(self, decisions: Mapping[str, Any]) -> None:
        """Answer the escalation interrupt: ``{task_id: "retry" | {"action": "reassign", "agent_id": ...}
        | {"action": "fail", "reason": ...} | {"action": "resolve", "result": ...}}``; the run resumes."""
        self._require_started()
        await self._submit(Command(resume=dict(decisions)))

    async def handle_task_failure(self, failure: Mapping[str, Any] | str) -> dict[str, Any]:
        """The recovery record of a failed task (a ``task_failure`` event or a task id).

        The ladder (retry, reassign, fallback) already ran inside the graph; this returns what it
        did. If the task ended ``failed`` and ``escalate`` is a recovery strategy, it is handed to
        a human (the run pauses on the escalation interrupt).
        """
        self._require_started()
        task_id = failure if isinstance(failure, str) else str(failure.get("task_id"))
        await self._refresh()
        task = self._task_for(allocation_id_for(task_id))
        escalated = task.get("status") == "failed" and "escalate" in self.config.emergency_protocols.recovery_strategies
        if escalated:
            await self._submit({"escalate_tasks": [task_id]})
            await self._refresh()
            task = self._task_for(allocation_id_for(task_id))
        steps = task.get("recovery") or []
        return {
            "recovery_id": f"recovery-{task_id}-{len(steps)}",
            "task_id": task_id,
            "status": task.get("status"),
            "error": task.get("error"),
            "steps": steps,
            "escalated": task.get("status") == "escalating",
        }

    # -- events and metrics ----------------------------------------------------------------
    def on(self, event: str, handler: EventHandler) -> None:
        """Call ``handler(event_dict)`` for each event of that type (``"*"`` for all)."""
        self._events.on(event, handler)

    @property
    def system_optimizer(self) -> SystemOptimizer:
        """The optimizer over this orchestra's config and Store (the seed's ``systemOptimizer``).

        Example:
            >>> report = await orchestra.system_optimizer.optimize_system_performance()  # doctest: +SKIP
        """
        return SystemOptimizer(self.config, self._store, clock=self._clock)

    async def orchestrate_system_optimization(self) -> dict[str, Any]:
        """Review the allocation strategy now and report it (the seed's reaction to
        ``workload_imbalance``); the graph's optimizer node also runs it on its schedule.

        Returns:
            The report of :meth:`SystemOptimizer.optimize_system_performance`.
        """
        report = await self.system_optimizer.optimize_system_performance(reason="on_demand")
        await self._events.emit({"type": "system_optimized", **report})
        return report

    def get_performance_metrics(self) -> dict[str, Any]:
        """The metrics tree (see :mod:`stellar_graph.metrics` for each formula)."""
        return performance_metrics(self._state)

    def now(self) -> datetime:
        """The orchestra's clock (a fixed clock in tests)."""
        return self._clock()

    def state(self) -> dict[str, Any]:
        """The latest known values of the orchestra's state (a copy)."""
        return dict(self._state)

    # -- operations hooks (used by the operations mixin) -------------------------------------
    @property
    def checkpointer(self) -> BaseCheckpointSaver[Any] | None:
        """The checkpointer holding this orchestra's thread."""
        return self._checkpointer

    @property
    def store(self) -> BaseStore | None:
        """The LangGraph Store (cross-thread memory)."""
        return self._store

    @property
    def runs_paused(self) -> bool:
        """True while queued runs are held (maintenance mode)."""
        return not self._runs_allowed.is_set()

    def pause_runs(self) -> None:
        """Hold queued runs: new work is still accepted and validated, and waits in order."""
        self._runs_allowed.clear()

    def resume_runs(self) -> None:
        """Let held runs proceed, in the order they were queued."""
        self._runs_allowed.set()

    async def stop_intake(self, *, cancel_current: bool) -> None:
        """Refuse new work; optionally cancel the run in flight (its finished steps are checkpointed
        and a restart resumes it). Runs queued but not started fail with a clear error: they were
        never accepted into the state."""
        self._intake_open = False
        if cancel_current and self._current is not None:
            self._current.cancel()
        self._runs_allowed.set()
        while not self._queue.empty():
            _, fut = self._queue.get_nowait()
            fut.set_exception(OrchestrationError("not started: emergency shutdown stopped the intake"))
            self._queue.task_done()

    def runtime_status(self) -> dict[str, Any]:
        """The worker's state: started, alive, run in flight, queued runs, paused, intake open."""
        return {
            "started": self._app is not None,
            "worker_alive": self._worker is not None and not self._worker.done(),
            "run_in_flight": self._current is not None,
            "queued_runs": self._queue.qsize() + int(self._holding),
            "paused": self.runs_paused,
            "intake_open": self._intake_open,
            "handler_errors": self._events.handler_errors,
        }

    async def refresh_state(self) -> None:
        """Re-read the thread's state from the checkpointer."""
        await self._refresh()

    async def emit(self, event: dict[str, Any]) -> None:
        """Deliver an event raised outside the graph (e.g. a system alert) to the handlers."""
        await self._events.emit(event)

    # -- internals -------------------------------------------------------------------------
    def _require_started(self) -> None:
        if self._app is None:
            raise OrchestrationError("The orchestra is not started. Fix: `await orchestra.start_orchestration()` or use `async with StellarOrchestra() as orchestra:`.")

    def _run_config(self) -> dict[str, Any]:
        return {"configurable": {"thread_id": self.thread_id}, "recursion_limit": RECURSION_LIMIT}

    def _task_for(self, allocation_id: str) -> dict[str, Any]:
        for task in (self._state.get("tasks") or {}).values():
            if allocation_id_for(task["id"]) == allocation_id:
                return dict(task)
        known = [allocation_id_for(t) for t in self._state.get("tasks") or {}]
        raise UnknownAgentError(
            allocation_id, known, kind="allocation id", fix="use the `allocation_id` that orchestrate_task() returned"
        )

    async def _refresh(self) -> None:
        snapshot = await self._app.aget_state(self._run_config())
        self._state = dict(snapshot.values or {})

    async def _submit(self, payload: Any, *, wait: bool = True) -> asyncio.Future[None]:
        if not self._intake_open and payload is not None:
            raise OrchestrationError(
                "The orchestra has stopped taking new work (emergency shutdown). Fix: start a new "
                "StellarOrchestra on the same data to resume; unfinished work continues there."
            )
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await self._queue.put((payload, fut))
        if wait:
            await fut
        return fut

    async def _work(self) -> None:
        while True:
            payload, fut = await self._queue.get()
            self._holding = True
            await self._runs_allowed.wait()  # maintenance mode holds queued work here
            self._holding = False
            if not self._intake_open and payload is not None:  # shut down while held: never started
                fut.set_exception(OrchestrationError("not started: emergency shutdown stopped the intake"))
                self._queue.task_done()
                continue
            mail: list[dict[str, Any]] = []
            try:
                if isinstance(payload, dict) and self._mail is not None:
                    mail = self._mail.take((self._state.get("agents") or {}).keys())
                    payload = {**payload, "deliver_messages": mail} if mail else payload
                self._current = asyncio.create_task(self._run(payload))
                await self._current
                if mail and self._mail is not None:
                    self._mail.settle(mail)
                fut.set_result(None)
            except (Exception, asyncio.CancelledError) as exc:
                if isinstance(exc, asyncio.CancelledError) and self._intake_open:
                    raise  # the worker itself is being stopped
                fut.set_exception(exc if isinstance(exc, Exception) else OrchestrationError("run cancelled by emergency shutdown"))
                self._fail_waiters(exc)
            finally:
                self._current = None
                await self._refresh()
                self._resolve_undecided()
                self._queue.task_done()

    async def _run(self, payload: Any) -> None:
        stream = self._app.astream(
            payload, self._run_config(), stream_mode="updates", durability=self.config.persistence.durability
        )
        async for chunk in stream:
            for update in chunk.values():
                if isinstance(update, dict):
                    await self._on_update(update)

    async def _on_update(self, update: dict[str, Any]) -> None:
        for allocation in (update.get("allocations") or {}).values():
            for fut in self._alloc_waiters.pop(allocation.get("task_id", ""), []):
                if not fut.done():
                    fut.set_result(allocation)
        for event in update.get("events") or []:
            # Handlers run beside the run, not inside it: a slow handler, or one that calls back
            # into the orchestra (handle_task_failure), never holds up or deadlocks the worker.
            task = asyncio.create_task(self._events.emit(event))
            self._handlers_running.add(task)
            task.add_done_callback(self._handlers_running.discard)

    def _resolve_undecided(self) -> None:
        """Tasks the run left undecided (waiting on dependencies) are reported as queued."""
        tasks = self._state.get("tasks") or {}
        for tid in [t for t in self._alloc_waiters if t in tasks]:
            waiting = [d for d in tasks[tid].get("dependencies") or [] if tasks.get(d, {}).get("status") != "completed"]
            allocation = {
                "allocation_id": allocation_id_for(tid), "task_id": tid, "agent_id": None, "status": "queued",
                "explanation": f"waiting for dependencies: {waiting}" if waiting else "waiting",
            }
            for fut in self._alloc_waiters.pop(tid):
                if not fut.done():
                    fut.set_result(allocation)

    def _fail_waiters(self, exc: BaseException) -> None:
        for futures in self._alloc_waiters.values():
            for fut in futures:
                if not fut.done():
                    fut.set_exception(exc)
        self._alloc_waiters.clear()


def _execution_view(task: Mapping[str, Any], allocation: Mapping[str, Any]) -> dict[str, Any]:
    report = task.get("report") or {}
    return {
        "allocation_id": allocation.get("allocation_id", allocation_id_for(task["id"])),
        "task_id": task["id"],
        "agent_id": task.get("agent_id"),
        "status": task.get("status"),
        "result": task.get("result"),
        "error": task.get("error"),
        "simulated": report.get("simulated"),
        "usage": report.get("usage", {}),
        "timings": {
            "submitted_at": task.get("submitted_at"),
            "allocated_at": task.get("allocated_at"),
            "started_at": task.get("started_at"),
            "finished_at": task.get("finished_at"),
            "agent_minutes": report.get("duration_minutes"),
            "wall_seconds": task.get("wall_seconds"),
        },
        "allocation": dict(allocation),
    }
