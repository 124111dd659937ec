"""`StellarOrchestra`: the seed's API (in snake_case, async) over the compiled orchestra graph.

Example:
    >>> async def main():
    ...     async with StellarOrchestra() as orchestra:          # SQLite under .stellar_graph/, simulated agents
    ...         await orchestra.register_agent({"agent_id": "atlas-001", "agent_type": "AtlasAgent",
    ...             "capabilities": ["knowledge_synthesis"], "specializations": ["ethics"]})
    ...         allocation = await orchestra.orchestrate_task({"id": "t1", "description": "...",
    ...             "required_skills": ["ethics"]})
    ...         print(await orchestra.monitor_task_execution(allocation.allocation_id))

One thread holds the orchestra's state; an :class:`~stellar_graph.runtime.OrchestraRuntime` feeds
it events in short control runs (one at a time, batching what arrived meanwhile) and runs each
task attempt as a run of the task graph on its own thread. A call returns when what it changed is
in the state: a registration, an allocation; :meth:`monitor_task_execution` waits for the work.
"""

from __future__ import annotations

import asyncio
import logging
from collections import ChainMap
from collections.abc import Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from datetime import datetime
from typing import Any

from langchain_core.language_models import BaseChatModel
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.store.base import BaseStore
from langgraph.types import Command
from pydantic import BaseModel

from stellar_graph.agents.spec import REFERENCE_TEAM, AgentSpec, AgentTypeRegistry, agent_specs
from stellar_graph.board import FINISHED, allocation_id_for, utc_now
from stellar_graph.bus import AdvancedMessageBus
from stellar_graph.collaboration.facade import CollaborationMixin
from stellar_graph.config import OrchestraConfig
from stellar_graph.errors import (
    ConfigurationError,
    InvalidInputError,
    OrchestrationError,
    UnknownAgentError,
)
from stellar_graph.events import EventHandler, EventHub
from stellar_graph.graph import create_orchestra
from stellar_graph.graphs.task import create_task_graph
from stellar_graph.history import alookup
from stellar_graph.integrations.facade import IntegrationsMixin
from stellar_graph.llm import make_chat_model
from stellar_graph.mail import MailBridge
from stellar_graph.metrics import performance_metrics
from stellar_graph.models import AgentProfile, Allocation
from stellar_graph.ops.facade import OperationsMixin
from stellar_graph.optimizer import SystemOptimizer
from stellar_graph.persistence import open_persistence
from stellar_graph.runtime.control import OrchestraRuntime
from stellar_graph.runtime.lease import Lease, lease_for
from stellar_graph.scoring_tools import create_scoring_tools
from stellar_graph.submission import (
    accept_agents,
    accept_tasks,
    check_strategy,
    known_agent_names,
    referenced_ids,
)
from stellar_graph.task_allocator import TaskAllocator
from stellar_graph.tokens import count_tokens

__all__ = ["StellarOrchestra"]

logger = logging.getLogger(__name__)


class StellarOrchestra(CollaborationMixin, OperationsMixin, IntegrationsMixin):
    """The central orchestration engine: register agents, orchestrate tasks, read metrics.

    Args:
        config: an :class:`OrchestraConfig`, a dict or a YAML/TOML path (defaults otherwise).
        model: the agents' chat model; ``None`` uses ``config.llm`` or simulates the agents.
        agents: the agent types the orchestra knows (the Vegapunk reference team by default),
            besides those ``config.agent_types`` declares. :meth:`register_agent_type` adds more.
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
        agents: Sequence[AgentSpec] | None = None,
        thread_id: str = "stellar-orchestra",
        checkpointer: BaseCheckpointSaver[Any] | None = None,
        store: BaseStore | None = None,
        seed: int = 0,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.config = OrchestraConfig.load(config)
        self.thread_id = thread_id
        self._agents = tuple(REFERENCE_TEAM if agents is None else agents)
        self.agent_types = AgentTypeRegistry(agent_specs(self.config.agent_types, self._agents))
        self._model = model if model is not None else make_chat_model(self.config.llm)
        self._graph_options: dict[str, Any] = {
            "model": self._model, "seed": seed, "clock": clock, "extra_tools": self.external_tools,
        }
        self._graph = create_orchestra(self.config, agents=self._agents, **self._graph_options)
        self._task_graph = create_task_graph(self.config, agents=self._agents, **self._graph_options)
        self._checkpointer, self._store = checkpointer, store
        self._clock = clock
        self._events = EventHub()
        self._stack: AsyncExitStack | None = None
        self._app: Any = None
        self._runtime: OrchestraRuntime | None = None
        self._final_state: dict[str, Any] = {}  # what state() shows once stopped
        self._mail: MailBridge | None = None
        self._handlers_running: set[asyncio.Task[None]] = set()
        self.task_allocator = TaskAllocator(self)

    # -- lifecycle -------------------------------------------------------------------------
    async def start_orchestration(self) -> None:
        """Open persistence, compile the graphs, and resume work a previous process left unfinished
        (an unfinished control run is completed; running tasks' runs are resumed)."""
        if self._app is not None:
            return
        self._stack = AsyncExitStack()
        lease = Lease()  # a caller's own saver: one process, as far as we know
        if self._checkpointer is None:
            self._checkpointer, self._store = await self._stack.enter_async_context(
                open_persistence(self.config.persistence)
            )
            lease = await lease_for(self._checkpointer, self.config.persistence)
            self._stack.push_async_callback(lease.aclose)
        self._app = self._graph.compile(checkpointer=self._checkpointer, store=self._store, name="stellar_orchestra")
        tasks = self._task_graph.compile(checkpointer=self._checkpointer, store=self._store, name="stellar_task")
        self._mail = MailBridge.open(self.config, self.thread_id)
        self._runtime = OrchestraRuntime(
            self._app, tasks, thread_id=self.thread_id, durability=self.config.persistence.durability,
            on_event=self._on_event, extra_input=self._take_mail, committed=self._settle_mail,
            prune_every=self.config.persistence.control_history_runs, lease=lease,
        )
        snapshot = await self._app.aget_state({"configurable": {"thread_id": self.thread_id}})
        self._mail.register(((snapshot.values or {}).get("agents") or {}).values())
        self._mail.start()
        await self._runtime.start()

    async def stop_orchestration(self) -> None:
        """Finish queued work (control runs and task runs), flush webhooks and notifications,
        then close persistence."""
        await self.aclose_operations()  # stops monitors and leaves maintenance mode first
        if self._runtime is not None:
            await self.wait_idle()
            await self._runtime.close()
            self._final_state, self._runtime = self._runtime.state, None
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

    def simulated_types(self) -> list[str]:
        """The agent types whose work is simulated: no orchestra model, and the type brings
        neither a model nor a graph of its own (an instance's ``model`` still makes it real)."""
        if self._model is not None:
            return []
        return [s.name for s in self.agent_types.specs if s.graph is None and s.model is None]

    @property
    def app(self) -> Any:
        """The compiled graph (for streaming, ``aget_state`` and Studio-style inspection)."""
        self._require_started()
        return self._app

    # -- agents ----------------------------------------------------------------------------
    def register_agent_type(self, spec: AgentSpec) -> AgentSpec:
        """Add an agent type at run time; instances of it can be registered at once.

        The control and task graphs are rebuilt with the new agent subgraph; runs already in
        flight finish on the graphs they started with. A restarted orchestra must be given the
        type again (``agents=`` or ``config.agent_types``) before tasks of it run.

        Raises:
            ConfigurationError: ``spec``'s name or one of its spellings is already taken.
        """
        if not isinstance(spec, AgentSpec):
            raise ConfigurationError(
                f"register_agent_type takes an AgentSpec, got {type(spec).__name__}. Fix: "
                "register_agent_type(AgentSpec(name='cartographer', capabilities=('mapping',))).",
                field="spec", value=repr(spec)[:80],
            )
        taken = [a for a in spec.aliases() if a.lower() in self.agent_types.aliases()]
        if taken:
            raise ConfigurationError(
                f"Agent type {spec.name!r}: {sorted(taken)} already name a known type "
                f"({list(self.agent_types.type_names())}). Fix: pick another name.",
                field="name", value=spec.name,
            )
        agents = (*self._agents, spec)
        registry = AgentTypeRegistry(agent_specs(self.config.agent_types, agents))
        graph = create_orchestra(self.config, agents=agents, **self._graph_options)
        task_graph = create_task_graph(self.config, agents=agents, **self._graph_options)
        self._agents, self.agent_types, self._graph, self._task_graph = agents, registry, graph, task_graph
        if self._runtime is not None:  # running: the next control run and task runs use the new graphs
            self._app = graph.compile(checkpointer=self._checkpointer, store=self._store, name="stellar_orchestra")
            self._runtime.control = self._app
            self._runtime.runner.app = task_graph.compile(
                checkpointer=self._checkpointer, store=self._store, name="stellar_task"
            )
        return spec

    async def register_agent(self, profile: AgentProfile | Mapping[str, Any]) -> AgentProfile:
        """Register an agent instance (``atlas-001``) of a known agent type.

        Returns when the registration is in the orchestra's state (``get_agent`` sees it).

        Raises:
            InvalidInputError, DuplicateAgentError, UnknownAgentError: nothing is registered.
        """
        runtime = self._require_started()
        raw = profile.model_dump(mode="json") if isinstance(profile, AgentProfile) else profile
        record = self._accept_agents([raw], {})  # fail fast, before queueing

        def check(ahead: Mapping[str, Any]) -> None:
            self._accept_agents([raw], ahead)  # again, behind the events queued ahead of it

        await runtime.submit({"register_agents": [dict(raw)]}, check=check)
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

        Returns as soon as the allocator has decided, with every task on the board; the work runs
        on in task runs of its own (follow it with :meth:`monitor_task_execution`).

        Args:
            tasks: ``Task`` models or dicts.
            strategy: override ``task_allocation.strategy`` for this batch.

        Raises:
            InvalidInputError: a task is malformed or names an unknown dependency or agent.
            DuplicateTaskError: a task id is already on the board (or repeated in the batch).
        """
        runtime = self._require_started()
        check_strategy(strategy)
        if isinstance(tasks, Mapping | str | bytes) or not isinstance(tasks, Sequence):
            raise InvalidInputError(
                f"`tasks` must be a list of tasks, got {type(tasks).__name__}. Fix: pass "
                "`[task, ...]`, or call `orchestrate_task(task)` for one.",
                errors=[{"field": "tasks", "value": type(tasks).__name__, "message": "not a list"}],
            )
        raw = [t.model_dump(mode="json") if isinstance(t, BaseModel) else t for t in tasks]
        history = await alookup(self._store, self.thread_id, referenced_ids(raw))
        finished = {tid: str(item["task"].get("status")) for tid, item in history.items()}
        records = self._accept_tasks(raw, {}, finished)  # fail fast, before queueing

        def check(ahead: Mapping[str, Any]) -> None:
            # Again, behind the events queued ahead of it and what left the board meanwhile.
            self._accept_tasks(raw, ahead, ChainMap(runtime.retired, finished))  # no copy per call

        payload: dict[str, Any] = {"submit_tasks": [dict(t) for t in raw]}
        if strategy is not None:
            payload["allocation_strategy"] = strategy
        state = await runtime.submit(payload, check=check)
        return [Allocation.model_validate(_allocation_view(state, tid)) for tid in records]

    async def monitor_task_execution(self, allocation_id: str, *, wait: bool = True) -> dict[str, Any]:
        """Status, result and timings of an allocation; ``wait`` until the task has finished.

        With ``wait``, returns once the task is finished or escalated, or once nothing more can
        happen without a later call (it waits on capacity, agents or a dependency).

        Raises:
            UnknownAgentError: no such allocation (the message lists known ones).
        """
        runtime = self._require_started()
        task_id = allocation_id.removeprefix("alloc-")
        if not await self._known(task_id):
            self._task_for(allocation_id)  # raises, naming the known allocation ids
        if wait:
            await runtime.wait_for(lambda state: _settled(state, allocation_id))
        records = await self.get_task_records([task_id])
        record = records.get(task_id) or {"task": self._task_for(allocation_id), "allocation": {}}
        return _execution_view(record["task"], record["allocation"])

    async def get_task_records(self, task_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Task id -> ``{"task": record, "allocation": record}``, from the board or, for
        finished tasks that have left it, from the history in the Store (the control state holds
        active work and the newest finished tasks only). Unknown ids are left out."""
        board, allocations = self._state.get("tasks") or {}, self._state.get("allocations") or {}
        found = {t: {"task": dict(board[t]), "allocation": dict(allocations.get(allocation_id_for(t)) or {})}
                 for t in task_ids if t in board}
        found.update(await alookup(self._store, self.thread_id, [t for t in task_ids if t not in board]))
        return found

    async def _known(self, task_id: str) -> bool:
        return task_id in (self._state.get("tasks") or {}) or bool(await alookup(self._store, self.thread_id, [task_id]))

    async def submit_run(self, payload: Mapping[str, Any]) -> None:
        """Queue one control run with ``payload`` as input and wait until it has committed.

        The building block of the facade's methods (and of mixins): control runs on the
        orchestra's thread execute one at a time, in order.
        """
        await self._require_started().submit(dict(payload))

    async def wait_idle(self) -> None:
        """Wait until no control run or task run is queued or in flight, and every event handler
        they triggered has finished."""
        runtime = self._require_started()
        while True:
            await runtime.wait_idle()
            if not self._handlers_running:
                return
            await asyncio.gather(*list(self._handlers_running), return_exceptions=True)

    # -- recovery --------------------------------------------------------------------------
    def pending_escalations(self) -> dict[str, dict[str, Any]]:
        """Tasks waiting for a human decision (the recovery ladder's ``escalate`` rung)."""
        return {tid: dict(t) for tid, t in (self._state.get("tasks") or {}).items() if t.get("status") == "escalating"}

    async def resolve_escalations(self, decisions: Mapping[str, Any]) -> None:
        """Answer the escalation interrupt: ``{task_id: "retry" | {"action": "reassign", "agent_id": ...}
        | {"action": "fail", "reason": ...} | {"action": "resolve", "result": ...}}``; the control run
        resumes. Returns once the decisions are applied; a retried or reassigned task runs on (follow
        it with :meth:`monitor_task_execution`)."""
        await self._require_started().submit(Command(resume=dict(decisions)))

    async def handle_task_failure(self, failure: Mapping[str, Any] | str) -> dict[str, Any]:
        """The recovery record of a failed task (a ``task_failure`` event or a task id).

        The ladder (retry, reassign, fallback) already ran inside the graph; this returns what it
        did. If the task ended ``failed`` and ``escalate`` is a recovery strategy, it is handed to
        a human (the run pauses on the escalation interrupt).
        """
        self._require_started()
        task_id = failure if isinstance(failure, str) else str(failure.get("task_id"))
        await self.refresh_state()  # a handler may call this while the run that failed it ends
        record = (await self.get_task_records([task_id])).get(task_id)
        task = record["task"] if record is not None else self._task_for(allocation_id_for(task_id))
        escalated = task.get("status") == "failed" and "escalate" in self.config.emergency_protocols.recovery_strategies
        if escalated:
            await self.submit_run({"escalate_tasks": [task_id]})
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
        """True while control runs are held (maintenance mode)."""
        return self._runtime is not None and self._runtime.paused

    def pause_runs(self) -> None:
        """Hold control runs: new work is still accepted and validated, and waits in order
        (task runs in flight go on; their outcomes wait too)."""
        self._require_started().pause()

    def resume_runs(self) -> None:
        """Let held control runs proceed, in the order they were queued."""
        self._require_started().resume()

    async def stop_intake(self, *, cancel_current: bool) -> None:
        """Refuse new work; optionally cancel the control run and task runs in flight (their
        finished steps are checkpointed and a restart resumes them). Work queued but not started
        fails with a clear error: it was never accepted into the state."""
        await self._require_started().stop_intake(cancel_current=cancel_current)

    def runtime_status(self) -> dict[str, Any]:
        """The control loop's state: started, alive, control run in flight, queued events, task
        runs live, paused, intake open, event-handler errors."""
        status = self._runtime.status() if self._runtime is not None else {"started": False}
        return {**status, "handler_errors": self._events.handler_errors}

    def take_node_timings(self) -> dict[str, dict[str, float]]:
        """Node name -> ``{"seconds", "steps"}`` of the control runs since the last call (then reset)."""
        if self._runtime is None:
            return {}
        timings, self._runtime.node_timings = self._runtime.node_timings, {}
        return timings

    async def refresh_state(self) -> None:
        """Re-read the thread's state from the checkpointer."""
        runtime = self._require_started()
        snapshot = await self._app.aget_state({"configurable": {"thread_id": self.thread_id}})
        runtime.state = dict(snapshot.values or {})

    async def emit(self, event: dict[str, Any]) -> None:
        """Deliver an event raised outside the graph (e.g. a system alert) to the handlers."""
        await self._events.emit(event)

    # -- internals -------------------------------------------------------------------------
    @property
    def _state(self) -> dict[str, Any]:
        return self._runtime.state if self._runtime is not None else self._final_state

    def _require_started(self) -> OrchestraRuntime:
        if self._runtime is None:
            raise OrchestrationError("The orchestra is not started. Fix: `await orchestra.start_orchestration()` or use `async with StellarOrchestra() as orchestra:`.")
        return self._runtime

    def _task_for(self, allocation_id: str) -> dict[str, Any]:
        for task in (self._state.get("tasks") or {}).values():
            if allocation_id_for(task["id"]) == allocation_id:
                return dict(task)
        known = [allocation_id_for(t) for t in self._state.get("tasks") or {}]
        raise UnknownAgentError(
            allocation_id, known, kind="allocation id", fix="use the `allocation_id` that orchestrate_task() returned"
        )

    def _accept_agents(self, raw: Sequence[Any], ahead: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        """Validate agents against the registry plus those queued ahead in the same control run."""
        existing = {**(self._state.get("agents") or {}), **{a.get("agent_id"): a for a in ahead.get("register_agents") or []}}
        return accept_agents(existing, raw, self.agent_types, count_tokens)

    def _accept_tasks(
        self, raw: Sequence[Any], ahead: Mapping[str, Any], finished: Mapping[str, str]
    ) -> dict[str, dict[str, Any]]:
        """Validate tasks against the board, the history and the tasks (and agents) queued ahead."""
        board = {**(self._state.get("tasks") or {}), **{t.get("id"): t for t in ahead.get("submit_tasks") or []}}
        agents = {**(self._state.get("agents") or {}), **{a.get("agent_id"): a for a in ahead.get("register_agents") or []}}
        known = known_agent_names(agents, self.agent_types)
        return accept_tasks(board, raw, count_tokens, now=self._clock(), known_agents=known, finished=finished)

    def _on_event(self, event: dict[str, Any]) -> asyncio.Task[None]:
        # Handlers run beside the control loop, not inside it: a slow handler, or one that calls
        # back into the orchestra (handle_task_failure), never holds up or deadlocks it.
        task = asyncio.get_running_loop().create_task(self._events.emit(event))
        self._handlers_running.add(task)
        task.add_done_callback(self._handlers_running.discard)
        return task

    def _take_mail(self, state: Mapping[str, Any], fresh: bool) -> dict[str, Any] | None:
        if self._mail is None:
            return {}
        mail = self._mail.take(state.get("agents") or {}, fresh=fresh)
        if mail is None:
            return None
        return {"deliver_messages": mail} if mail else {}

    def _settle_mail(self, extra: dict[str, Any]) -> None:
        if self._mail is not None:
            self._mail.settle(extra.get("deliver_messages") or [])


def _settled(state: Mapping[str, Any], allocation_id: str) -> bool:
    task_id = allocation_id.removeprefix("alloc-")
    status = ((state.get("tasks") or {}).get(task_id) or {}).get("status")
    return status in FINISHED or status == "escalating"


def _allocation_view(state: Mapping[str, Any], task_id: str) -> dict[str, Any]:
    """The allocation of a task just submitted; a task waiting on dependencies shows as queued."""
    allocation = (state.get("allocations") or {}).get(allocation_id_for(task_id))
    if allocation is not None:
        return dict(allocation)
    tasks = state.get("tasks") or {}
    waiting = [d for d in tasks.get(task_id, {}).get("dependencies") or [] if tasks.get(d, {}).get("status") != "completed"]
    return {
        "allocation_id": allocation_id_for(task_id), "task_id": task_id, "agent_id": None, "status": "queued",
        "explanation": f"waiting for dependencies: {waiting}" if waiting else "waiting",
    }


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
