"""The systems ``bench_vs_peers`` compares, each behind the same small runner interface.

Every system gets a real ``ChatOpenAI`` pointed at the mock server, the agents' prompts from the
workload, and an ``AsyncSqliteSaver`` (timed: see :class:`TimedSqliteSaver`) in its own file.

* ``stellar``: the :class:`StellarOrchestra` facade (what users call), one orchestra thread.
* ``stellar-graph``: the same orchestra graph compiled and invoked directly (no facade).
* ``supervisor``: ``langgraph_supervisor.create_supervisor`` over four ``create_agent`` workers.
* ``supervisor-fwd``: the same with ``create_forward_message_tool`` (the supervisor forwards the
  worker's answer instead of writing it again: the library's token-saving option).
* ``supervisor-shared``: the plain supervisor with every task in one conversation (one thread),
  shown for contrast only: its history, and so every supervisor prompt, grows with each task.
* ``swarm``: ``langgraph_swarm.create_swarm``; Atlas is the default active agent.
* ``plain``: a ``StateGraph`` routing by skill from ``START`` straight to the owner's LLM node
  (the lower limit of orchestration cost).
* ``stellar-shape``: stellar_graph's LangGraph shape and nothing else: per task the same runs and
  node paths as the live orchestra (:data:`SHAPE_SUBMIT`, :data:`SHAPE_AGENT`,
  :data:`SHAPE_OUTCOME`), every node a no-op except ``act``, which makes ``plain``'s LLM call. Its
  overhead is what LangGraph itself costs for the design's runs and steps: the floor of
  ``stellar`` (no board, no allocator, no learning, no facade).

Otherwise peers run one task per thread (one conversation per task), the fairest setting for
them: nothing from earlier tasks is re-read. stellar_graph keeps its one orchestra thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import warnings
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
from langchain_core.messages import HumanMessage, SystemMessage
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.store.sqlite.aio import AsyncSqliteStore
from langgraph.types import Command
from typing_extensions import TypedDict

from _peers_workload import BenchTask, Workload, supervisor_prompt
from stellar_graph import StellarOrchestra, create_orchestra
from stellar_graph.agents.render import render_task_message
from stellar_graph.graphs import create_task_graph
from stellar_graph.runtime import OrchestraRuntime
from stellar_graph.runtime.control import CONTROL_DURABILITY
from stellar_graph.testing import make_test_chat_openai

__all__ = [
    "SYSTEMS",
    "GraphRunner",
    "Mark",
    "Outcome",
    "SHAPE_AGENT",
    "SHAPE_OUTCOME",
    "SHAPE_SUBMIT",
    "RunContext",
    "Runner",
    "TimedSqliteSaver",
]

T = TypeVar("T")
RECURSION_LIMIT = 10_000

Mark = tuple[tuple[str, ...], str, str, str, float]
"""A node event: ``(namespace, node name, task id, "start" | "end", time.perf_counter())``."""


@dataclass(frozen=True)
class Outcome:
    """What a system produced for one task.

    Attributes:
        task_id: the task.
        answer: the final answer the system returned (``None`` if it produced none).
        agent: the agent type the system itself says did the work (stellar_graph's allocation),
            ``None`` for systems that do not record it (the server's log is used for those).
    """

    task_id: str
    answer: str | None
    agent: str | None = None


@dataclass(frozen=True)
class RunContext:
    """Everything a system needs to be built for one measured run."""

    workload: Workload
    base_url: str
    db_dir: Path
    durability: str
    model_name: str = "gpt-4o-mini"
    clients: list[httpx.AsyncClient | httpx.Client] = field(default_factory=list)

    @classmethod
    def fresh(cls, workload: Workload, base_url: str, db_dir: Path, durability: str) -> RunContext:
        """A context whose database directory is created now (it must not exist yet)."""
        db_dir.mkdir(parents=True)
        return cls(workload, base_url, db_dir, durability)

    def chat_model(self) -> Any:
        """A real ChatOpenAI on the mock server (plain httpx clients, no retries)."""
        sync, async_ = httpx.Client(), httpx.AsyncClient()
        self.clients.extend((sync, async_))
        return make_test_chat_openai(
            self.base_url,
            model=self.model_name,
            timeout=60,
            max_retries=0,
            http_client=sync,
            http_async_client=async_,
        )

    async def aclose(self) -> None:
        """Close the HTTP clients of the chat models built from this context."""
        for client in self.clients:
            if isinstance(client, httpx.AsyncClient):
                await client.aclose()
            else:
                client.close()
        self.clients.clear()


class TimedSqliteSaver(AsyncSqliteSaver):
    """``AsyncSqliteSaver`` that adds up the time and count of its async operations."""

    timings: dict[str, list[float]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.timings = defaultdict(lambda: [0, 0.0])

    def reset(self) -> None:
        """Forget what was measured so far (setup is not part of a run)."""
        self.timings.clear()

    async def _timed(self, op: str, work: Awaitable[T]) -> T:
        started = time.perf_counter()
        try:
            return await work
        finally:
            slot = self.timings[op]
            slot[0] += 1
            slot[1] += time.perf_counter() - started

    async def aget_tuple(self, config: Any) -> Any:
        return await self._timed("aget_tuple", super().aget_tuple(config))

    async def aput(self, config: Any, checkpoint: Any, metadata: Any, new_versions: Any) -> Any:
        return await self._timed("aput", super().aput(config, checkpoint, metadata, new_versions))

    async def aput_writes(
        self, config: Any, writes: Any, task_id: str, task_path: str = ""
    ) -> None:
        await self._timed("aput_writes", super().aput_writes(config, writes, task_id, task_path))


class Runner(ABC):
    """Runs tasks through one system."""

    label: str
    saver: TimedSqliteSaver

    @abstractmethod
    async def run_one(self, bt: BenchTask) -> Outcome:
        """Run one task to completion."""

    async def profile_one(self, bt: BenchTask) -> tuple[list[Mark], float]:
        """Run one task; without access to node events, only its wall time is known."""
        started = time.perf_counter()
        await self.run_one(bt)
        return [], time.perf_counter() - started

    async def run_many(self, bts: Sequence[BenchTask], limit: int) -> list[Outcome]:
        """Run tasks concurrently, at most ``limit`` in flight (one thread each)."""
        gate = asyncio.Semaphore(limit)

        async def one(bt: BenchTask) -> Outcome:
            async with gate:
                return await self.run_one(bt)

        return list(await asyncio.gather(*(one(bt) for bt in bts)))


@dataclass
class GraphRunner(Runner):
    """A compiled graph invoked once per task (or once for a batch when ``batch_input`` is set)."""

    label: str
    app: Any
    saver: TimedSqliteSaver
    durability: str
    make_input: Callable[[BenchTask], dict[str, Any]]
    read: Callable[[BenchTask, dict[str, Any]], Outcome]
    thread: Callable[[BenchTask], str]
    batch_input: Callable[[Sequence[BenchTask]], dict[str, Any]] | None = None

    def config(self, bt: BenchTask) -> dict[str, Any]:
        """The run config of one task (its thread)."""
        return {"configurable": {"thread_id": self.thread(bt)}, "recursion_limit": RECURSION_LIMIT}

    async def run_one(self, bt: BenchTask) -> Outcome:
        out = await self.app.ainvoke(
            self.make_input(bt), self.config(bt), durability=self.durability
        )
        return self.read(bt, out)

    async def run_many(self, bts: Sequence[BenchTask], limit: int) -> list[Outcome]:
        if self.batch_input is None:
            return await super().run_many(bts, limit)
        out = await self.app.ainvoke(
            self.batch_input(bts), self.config(bts[0]), durability=self.durability
        )
        return [self.read(bt, out) for bt in bts]

    async def profile_one(self, bt: BenchTask) -> tuple[list[Mark], float]:
        """Run one task streaming ``tasks`` events.

        Returns:
            ``(namespace, node, event id, "start"|"end", perf_counter)`` marks and the run's wall time.
        """
        marks: list[Mark] = []
        started = time.perf_counter()
        stream = self.app.astream(
            self.make_input(bt),
            self.config(bt),
            stream_mode="tasks",
            subgraphs=True,
            durability=self.durability,
        )
        async for namespace, event in stream:
            edge = "end" if "result" in event or "error" in event else "start"
            marks.append(
                (tuple(namespace), str(event["name"]), str(event["id"]), edge, time.perf_counter())
            )
        return marks, time.perf_counter() - started


class FacadeRunner(Runner):
    """``StellarOrchestra``: ``orchestrate_task`` + ``monitor_task_execution`` per task."""

    label = "stellar_graph (facade)"

    def __init__(
        self, orchestra: StellarOrchestra, saver: TimedSqliteSaver, workload: Workload
    ) -> None:
        self.orchestra, self.saver, self.workload = orchestra, saver, workload

    async def run_one(self, bt: BenchTask) -> Outcome:
        allocation = await self.orchestra.orchestrate_task(bt.task)
        execution = await self.orchestra.monitor_task_execution(allocation.allocation_id)
        return Outcome(bt.id, execution["result"], _agent_type(execution["agent_id"]))

    async def run_many(self, bts: Sequence[BenchTask], limit: int) -> list[Outcome]:
        # The orchestra's own capacity limits concurrency (3 per agent by default).
        await self.orchestra.orchestrate_multiple_tasks([bt.task for bt in bts])
        await self.orchestra.wait_idle()
        tasks = self.orchestra.state()["tasks"]
        return [_stellar_outcome(bt, tasks) for bt in bts]


def _agent_type(agent_id: str | None) -> str | None:
    return agent_id.rsplit("-", 1)[0] if agent_id else None


def _stellar_outcome(bt: BenchTask, tasks: dict[str, Any]) -> Outcome:
    record = tasks.get(bt.id) or {}
    return Outcome(bt.id, record.get("result"), _agent_type(record.get("agent_id")))


def _messages_outcome(bt: BenchTask, out: dict[str, Any]) -> Outcome:
    return Outcome(bt.id, str(out["messages"][-1].content))


@asynccontextmanager
async def _timed_saver(path: Path) -> AsyncIterator[TimedSqliteSaver]:
    async with TimedSqliteSaver.from_conn_string(str(path)) as saver:
        await saver.setup()
        assert isinstance(saver, TimedSqliteSaver)
        yield saver


@asynccontextmanager
async def _stellar_parts(
    ctx: RunContext,
) -> AsyncIterator[tuple[TimedSqliteSaver, AsyncSqliteStore, dict[str, Any]]]:
    config = {
        "persistence": {
            "backend": "sqlite",
            "data_dir": str(ctx.db_dir),
            "durability": ctx.durability,
        }
    }
    async with (
        _timed_saver(ctx.db_dir / "checkpoints.sqlite") as saver,
        AsyncSqliteStore.from_conn_string(str(ctx.db_dir / "store.sqlite")) as store,
    ):
        await store.setup()
        try:
            yield saver, store, config
        finally:
            await _stop_store_worker(store)


async def _stop_store_worker(store: AsyncSqliteStore) -> None:
    # The store's batching task is only cancelled when the store is garbage-collected, which can
    # happen after the event loop has closed ("Task was destroyed but it is pending!").
    task = getattr(store, "_task", None)
    if task is not None and not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@asynccontextmanager
async def stellar_facade(ctx: RunContext) -> AsyncIterator[Runner]:
    """stellar_graph through its facade, SQLite checkpointer and store."""
    async with _stellar_parts(ctx) as (saver, store, config):
        orchestra = StellarOrchestra(
            config, model=ctx.chat_model(), checkpointer=saver, store=store
        )
        async with orchestra:
            for spec in ctx.workload.team:
                await orchestra.register_agent(ctx.workload.profile(spec))
            yield FacadeRunner(orchestra, saver, ctx.workload)


class RuntimeRunner(Runner):
    """The orchestra's two graphs hosted by ``OrchestraRuntime``: one event per task, its outcome
    read from the control state (no facade)."""

    label = "stellar_graph (graph)"

    def __init__(self, runtime: OrchestraRuntime, saver: TimedSqliteSaver) -> None:
        self.runtime, self.saver = runtime, saver

    async def run_one(self, bt: BenchTask) -> Outcome:
        await self.runtime.submit({"submit_tasks": [bt.task]})
        await self.runtime.wait_for(lambda state: _finished(state, [bt.id]))
        return _stellar_outcome(bt, self.runtime.state["tasks"])

    async def run_many(self, bts: Sequence[BenchTask], limit: int) -> list[Outcome]:
        await self.runtime.submit({"submit_tasks": [bt.task for bt in bts]})
        await self.runtime.wait_idle()
        return [_stellar_outcome(bt, self.runtime.state["tasks"]) for bt in bts]


def _finished(state: dict[str, Any], ids: Sequence[str]) -> bool:
    tasks = state.get("tasks") or {}
    return all((tasks.get(t) or {}).get("status") in {"completed", "failed", "refused", "degraded"} for t in ids)


@asynccontextmanager
async def stellar_graph(ctx: RunContext) -> AsyncIterator[Runner]:
    """stellar_graph's control and task graphs compiled and run live, one thread for all tasks."""
    async with _stellar_parts(ctx) as (saver, store, config):
        options = {"model": ctx.chat_model()}
        control = create_orchestra(config, **options).compile(checkpointer=saver, store=store, name="stellar_orchestra")
        tasks = create_task_graph(config, **options).compile(checkpointer=saver, store=store, name="stellar_task")
        runtime = OrchestraRuntime(control, tasks, thread_id="stellar-orchestra", durability=ctx.durability)
        await runtime.start()
        try:
            await runtime.submit({"register_agents": [ctx.workload.profile(spec) for spec in ctx.workload.team]})
            yield RuntimeRunner(runtime, saver)
            await runtime.wait_idle()
        finally:
            await runtime.close()


def _workers(ctx: RunContext, model: Any, tools_for: Callable[[Any], list[Any]]) -> list[Any]:
    from langchain.agents import create_agent

    return [
        create_agent(
            model,
            tools=tools_for(spec),
            system_prompt=ctx.workload.system_prompt(spec),
            name=spec.name,
        )
        for spec in ctx.workload.team
    ]


def _messages_runner(
    label: str, app: Any, saver: TimedSqliteSaver, ctx: RunContext, *, shared: bool = False
) -> GraphRunner:
    return GraphRunner(
        label,
        app,
        saver,
        ctx.durability,
        make_input=lambda bt: {"messages": [HumanMessage(bt.message)]},
        read=_messages_outcome,
        thread=(lambda bt: label) if shared else (lambda bt: f"{label}:{bt.id}"),
    )


def _supervisor(
    forward: bool, shared: bool = False
) -> Callable[[RunContext], AbstractAsyncContextManager[Runner]]:
    @asynccontextmanager
    async def build(ctx: RunContext) -> AsyncIterator[Runner]:
        from langgraph.warnings import LangGraphDeprecatedSinceV10
        from langgraph_supervisor import (
            create_forward_message_tool,
            create_handoff_tool,
            create_supervisor,
        )

        model = ctx.chat_model()
        team = ctx.workload.team
        tools = [create_handoff_tool(agent_name=s.name, description=s.description) for s in team]
        if forward:
            tools.append(create_forward_message_tool("supervisor"))
        with warnings.catch_warnings():
            # create_supervisor builds its own node with the deprecated prebuilt ReAct agent.
            warnings.simplefilter("ignore", LangGraphDeprecatedSinceV10)
            graph = create_supervisor(
                _workers(ctx, model, lambda spec: []),
                model=model,
                tools=tools,
                prompt=supervisor_prompt(team),
            )
        async with _timed_saver(ctx.db_dir / "checkpoints.sqlite") as saver:
            label = "supervisor+forward" if forward else "supervisor"
            if shared:
                # One conversation for every task: the history (and each supervisor prompt) grows.
                yield _messages_runner(
                    f"{label}, one thread",
                    graph.compile(checkpointer=saver),
                    saver,
                    ctx,
                    shared=True,
                )
            else:
                yield _messages_runner(label, graph.compile(checkpointer=saver), saver, ctx)

    return build


@asynccontextmanager
async def swarm(ctx: RunContext) -> AsyncIterator[Runner]:
    """langgraph-swarm: every agent can hand off to the three others; Atlas starts."""
    from langgraph_swarm import create_handoff_tool, create_swarm

    model = ctx.chat_model()
    team = ctx.workload.team

    def handoffs(spec: Any) -> list[Any]:
        return [
            create_handoff_tool(agent_name=o.name, description=o.description)
            for o in team
            if o is not spec
        ]

    graph = create_swarm(_workers(ctx, model, handoffs), default_active_agent=team[0].name)
    async with _timed_saver(ctx.db_dir / "checkpoints.sqlite") as saver:
        yield _messages_runner("swarm", graph.compile(checkpointer=saver), saver, ctx)


class _PlainState(TypedDict, total=False):
    task: dict[str, Any]
    answer: str


def _answer_node(model: Any, workload: Workload, spec: Any) -> Callable[[Any], Awaitable[dict[str, Any]]]:
    """The plain graph's agent node: the owner's system prompt and the task message, one LLM call."""
    system = workload.system_prompt(spec)

    async def call(state: _PlainState) -> dict[str, Any]:
        reply = await model.ainvoke([SystemMessage(system), HumanMessage(render_task_message(state["task"]))])
        return {"answer": str(reply.content)}

    return call


def _owner(workload: Workload, state: Any) -> str:
    """The agent type that holds the task's skill (the plain graph's routing)."""
    return workload.owner_of_skill(state["task"]["required_skills"][0])


@asynccontextmanager
async def plain(ctx: RunContext) -> AsyncIterator[Runner]:
    """A plain StateGraph: route by skill from START to the owner's node, which calls its LLM."""
    model = ctx.chat_model()
    workload = ctx.workload
    builder: StateGraph[Any, Any, Any, Any] = StateGraph(_PlainState)

    def route(state: _PlainState) -> str:
        return _owner(workload, state)

    names = [spec.name for spec in workload.team]
    for spec in workload.team:
        builder.add_node(spec.name, _answer_node(model, workload, spec))
        builder.add_edge(spec.name, END)
    builder.add_conditional_edges(START, route, names)
    async with _timed_saver(ctx.db_dir / "checkpoints.sqlite") as saver:
        yield GraphRunner(
            "plain LangGraph",
            builder.compile(checkpointer=saver),
            saver,
            ctx.durability,
            make_input=lambda bt: {"task": bt.task},
            read=lambda bt, out: Outcome(bt.id, out.get("answer")),
            thread=lambda bt: f"plain:{bt.id}",
        )


SHAPE_SUBMIT = ("intake", "monitor", "allocator", "dispatch")
"""The control run a submitted task causes (its nodes in order)."""
SHAPE_OUTCOME = (*SHAPE_SUBMIT, "optimizer")
"""The control run a finished task run causes."""
SHAPE_AGENT = ("plan", "act", "check", "report")
"""The agent subgraph's nodes; the task run is ``begin -> <agent type> -> finish``."""


class _ShapeState(TypedDict, total=False):
    task: dict[str, Any]
    event: str
    answer: str


def _noop(state: _ShapeState) -> dict[str, Any]:
    return {}


def _chain(builder: StateGraph[Any, Any, Any, Any], names: Sequence[str], nodes: dict[str, Any]) -> None:
    for name in names:
        builder.add_node(name, nodes.get(name, _noop))
    for a, b in zip(names, names[1:], strict=False):
        builder.add_edge(a, b)


class ShapeRunner(Runner):
    """Per task: a control run on the one orchestra thread, the task run on its own thread, a
    control run for its outcome, with the durabilities stellar_graph uses."""

    label = "stellar_graph's shape only"

    def __init__(self, control: Any, tasks: Any, saver: TimedSqliteSaver, durability: str) -> None:
        self.control, self.tasks, self.saver, self.durability = control, tasks, saver, durability

    async def run_one(self, bt: BenchTask) -> Outcome:
        orchestra = {"configurable": {"thread_id": "shape-orchestra"}}
        await self.control.ainvoke({"event": "submit"}, orchestra, durability=CONTROL_DURABILITY)
        task = {"configurable": {"thread_id": f"shape:{bt.id}"}}
        out = await self.tasks.ainvoke({"task": bt.task}, task, durability=self.durability)
        await self.control.ainvoke({"event": "outcome"}, orchestra, durability=CONTROL_DURABILITY)
        return Outcome(bt.id, out.get("answer"))


@asynccontextmanager
async def shape(ctx: RunContext) -> AsyncIterator[Runner]:
    """stellar_graph's runs and node paths with no-op nodes; ``act`` calls the LLM as ``plain`` does."""
    model = ctx.chat_model()
    workload = ctx.workload

    def dispatch(state: _ShapeState) -> Command[str]:
        return Command(goto="optimizer" if state.get("event") == "outcome" else END)

    control: StateGraph[Any, Any, Any, Any] = StateGraph(_ShapeState)
    _chain(control, SHAPE_SUBMIT[:-1], {})
    control.add_node("dispatch", dispatch, destinations=("optimizer", END))  # routes itself, as stellar_graph's
    control.add_node("optimizer", _noop)
    control.add_edge(START, SHAPE_SUBMIT[0])
    control.add_edge(SHAPE_SUBMIT[-2], "dispatch")
    control.add_edge("optimizer", END)

    def agent(spec: Any) -> Any:
        inner: StateGraph[Any, Any, Any, Any] = StateGraph(_ShapeState)
        _chain(inner, SHAPE_AGENT, {"act": _answer_node(model, workload, spec)})
        inner.add_edge(START, SHAPE_AGENT[0])
        inner.add_edge(SHAPE_AGENT[-1], END)
        return inner.compile(name=spec.name)

    def begin(state: _ShapeState) -> Command[str]:
        return Command(goto=_owner(workload, state))

    tasks: StateGraph[Any, Any, Any, Any] = StateGraph(_ShapeState)
    tasks.add_node("begin", begin, destinations=tuple(s.name for s in workload.team))
    for spec in workload.team:
        tasks.add_node(spec.name, agent(spec))
        tasks.add_edge(spec.name, "finish")
    tasks.add_node("finish", _noop)
    tasks.add_edge(START, "begin")
    tasks.add_edge("finish", END)
    async with _timed_saver(ctx.db_dir / "checkpoints.sqlite") as saver:
        yield ShapeRunner(control.compile(checkpointer=saver), tasks.compile(checkpointer=saver), saver, ctx.durability)


SYSTEMS: dict[str, Callable[[RunContext], AbstractAsyncContextManager[Runner]]] = {
    "stellar": stellar_facade,
    "stellar-graph": stellar_graph,
    "supervisor": _supervisor(forward=False),
    "supervisor-fwd": _supervisor(forward=True),
    "supervisor-shared": _supervisor(forward=False, shared=True),
    "swarm": swarm,
    "plain": plain,
    "stellar-shape": shape,
}
"""Benchmark name -> factory of an async context manager yielding the system's runner."""
