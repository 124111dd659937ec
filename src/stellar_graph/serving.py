"""The orchestra and its agents over HTTP: a FastAPI app with LangServe routes.

Routes:

- ``/orchestra/{invoke,batch,stream,stream_log,stream_events,playground}``: one control event
  per request, input ``{"register_agents": [...], "submit_tasks": [...]}``, on the thread named
  by the ``X-Thread-Id`` header (the app's default thread otherwise). Each thread is live in an
  :class:`~stellar_graph.runtime.OrchestraRuntime` (short control runs, one at a time; a task
  run per task). The response is the thread's board once the request's tasks are finished or
  escalated, or right after their allocation with ``X-Wait: allocation``; ``stream`` yields the
  control runs' node updates meanwhile.
- ``/agents/<name>/...``: each agent type as a stateless graph (``{"task", "agent"}`` in,
  ``{"report"}`` out).
- ``/healthz``: liveness and the attached checkpointer kind (never needs the API key).
- ``/metrics``: Prometheus text, counters from each served thread's state.

The graphs are compiled without a checkpointer (LangServe calls ``ainvoke``/``astream``, and the
async savers need a running loop); the app's lifespan opens ``config.persistence`` (SQLite by
default, PostgreSQL when a database URL is configured) and attaches it. When the environment
variable named by ``api_key_env`` is set, every route but ``/healthz`` and ``/login`` needs that
key in the ``X-API-Key`` header, or the session cookie a browser gets by logging in at ``/login``
(401 otherwise; a browser is sent to the login page). The playground's form has typed fields for
tasks, agents and the other input lists (``stellar_graph._serving_ui``). Escalated runs answer
with ``interrupts`` and are resumed through ``POST /orchestra/resume``.

Example:
    >>> app = create_app({"persistence": {"data_dir": "/var/lib/stellar"}})
    >>> # uvicorn.run(app, host="127.0.0.1", port=8000), or `stellar-graph serve`
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from functools import partial
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import Runnable, RunnableConfig, ensure_config
from langgraph.types import Command
from langserve import add_routes
from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from pydantic import BaseModel, ConfigDict, Field, RootModel, create_model

from stellar_graph._serving_ui import (
    API_KEY_HEADER,
    THREAD_ID,
    add_auth,
    api_key_from_env,
    with_typed_items,
)
from stellar_graph.agents.factory import compile_agents
from stellar_graph.agents.spec import AgentSpec, AgentTypeRegistry, agent_specs
from stellar_graph.board import FINISHED, utc_now
from stellar_graph.config import OrchestraConfig
from stellar_graph.dashboard import LiveBoard, add_dashboard
from stellar_graph.errors import (
    ConfigurationError,
    DuplicateAgentError,
    OrchestrationError,
    UnknownAgentError,
)
from stellar_graph.graph import create_orchestra
from stellar_graph.graphs.task import create_task_graph
from stellar_graph.history import alookup
from stellar_graph.llm import ChatModels, make_chat_model
from stellar_graph.models import (
    AgentProfile,
    AgentRequest,
    CollaborationStart,
    HealthChange,
    MessageDelivery,
    OrchestraRequest,
    Task,
    parse_model,
)
from stellar_graph.persistence import backend_of, open_persistence
from stellar_graph.recovery import ESCALATION_OPTIONS, decision_problem
from stellar_graph.runtime.control import OrchestraRuntime
from stellar_graph.runtime.lease import Lease, lease_for
from stellar_graph.state import REGISTER_AGENTS, SUBMIT_TASKS, OrchestraInput
from stellar_graph.submission import (
    accept_agents,
    accept_tasks,
    check_strategy,
    known_agent_names,
)
from stellar_graph.tokens import count_tokens

__all__ = [
    "API_KEY_ENV",
    "API_KEY_HEADER",
    "DEFAULT_THREAD",
    "THREAD_HEADER",
    "create_app",
    "OrchestraCollector",
    "metrics_registry",
    "prometheus_text",
]

logger = logging.getLogger(__name__)

API_KEY_ENV = "STELLAR_GRAPH_API_KEY"
THREAD_HEADER = "X-Thread-Id"
DEFAULT_THREAD = "stellar-orchestra"
WAIT_HEADER = "X-Wait"
_WAITS = ("completion", "allocation")
_SETTLED = frozenset({*FINISHED, "escalating"})
_THREAD_ID = THREAD_ID
# Bad agents, tasks or run options in a request (a ConfigurationError there is the caller's).
_CLIENT_ERRORS = (ConfigurationError, DuplicateAgentError, UnknownAgentError)


def create_app(
    config: OrchestraConfig | Mapping[str, Any] | str | None = None,
    *,
    model: BaseChatModel | None = None,
    agents: Sequence[AgentSpec] | None = None,
    thread_id: str = DEFAULT_THREAD,
    seed: int = 0,
    clock: Callable[[], datetime] = utc_now,
    api_key_env: str = API_KEY_ENV,
) -> FastAPI:
    """Build the FastAPI app serving the orchestra and each agent type.

    Args:
        config: an :class:`OrchestraConfig`, a dict or a YAML/TOML path; ``persistence`` decides
            where thread state lives.
        model: the agents' chat model; ``None`` uses ``config.llm`` or simulates the agents.
        agents: the agent types (default the reference team), besides those
            ``config.agent_types`` declares; each is also served at ``/agents/<name>``.
        thread_id: the thread used when a request has no ``X-Thread-Id`` header.
        seed: simulation seed.
        clock: time source.
        api_key_env: the environment variable holding the API key; unset or empty means no auth.

    Returns:
        The app; its lifespan opens and closes the checkpointer and store.

    Raises:
        ConfigurationError: bad config or agent types.
    """
    cfg = OrchestraConfig.load(config)
    _check_thread_id(thread_id)
    chat = model if model is not None else make_chat_model(cfg.llm)
    options: dict[str, Any] = {"model": chat, "agents": agents, "seed": seed, "clock": clock}
    graph = create_orchestra(cfg, **options).compile(name="orchestra")
    tasks = create_task_graph(cfg, **options).compile(name="task")
    orchestra = _ServedOrchestra(
        graph, tasks, default_thread=thread_id, durability=cfg.persistence.durability
    )
    registry = AgentTypeRegistry(agent_specs(cfg.agent_types, agents))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_persistence(cfg.persistence) as (saver, store):
            for compiled in (graph, tasks):
                compiled.checkpointer, compiled.store = saver, store
            # Replicas on one database take turns on a thread's control runs and claim task runs.
            orchestra.lease = await lease_for(saver, cfg.persistence)
            logger.info("serving with %s checkpointer, %s store", _kind(saver), _kind(store))
            try:
                yield
            finally:
                await orchestra.aclose()
                await orchestra.lease.aclose()
                orchestra.lease = Lease()
                for compiled in (graph, tasks):
                    compiled.checkpointer, compiled.store = None, None

    app = FastAPI(title="stellar_graph", lifespan=lifespan)
    add_routes(
        app,
        orchestra,
        path="/orchestra",
        per_req_config_modifier=_thread_from_request(orchestra, registry, clock),
    )
    for name, agent in compile_agents(registry.specs, model=chat, seed=seed, models=ChatModels(cfg.llm)).items():
        add_routes(app, _Served(agent), path=f"/agents/{name}", per_req_config_modifier=_check_agent_input)
    _add_ops_routes(app, orchestra)
    add_dashboard(app, LiveBoard(orchestra))
    _add_error_handlers(app)
    _add_body_checks(app)
    add_auth(app, api_key_from_env(api_key_env), header=API_KEY_HEADER)
    return app


class _OrchestraForm(RootModel[OrchestraInput]):
    """The control graph's input as the playground draws it: each list's items typed with the
    edge models' fields (requests are validated as before: these are the same dicts)."""

    model_config = ConfigDict(title="orchestra_input")

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The JSON schema with typed list items (``task_outcomes``, the runners' own, left out)."""
        items: dict[str, type[BaseModel]] = {
            "submit_tasks": Task, "register_agents": AgentProfile, "start_collaborations": CollaborationStart,
            "set_agent_health": HealthChange, "deliver_messages": MessageDelivery,
        }
        return with_typed_items(super().model_json_schema(*args, **kwargs), items, hidden=("task_outcomes",))


class _Served(Runnable[dict[str, Any], dict[str, Any]]):
    """A compiled graph as LangServe sees it: async only, schemas passed through.

    Wrapping (instead of handing LangServe the graph) keeps LangServe from calling the graph's
    deprecated ``config_schema`` and is where the orchestra adds its thread handling.
    """

    def __init__(self, graph: Any) -> None:
        self.graph = graph
        self.name = graph.get_name()

    @property
    def InputType(self) -> Any:
        """The graph's input type."""
        return self.graph.InputType

    @property
    def OutputType(self) -> Any:
        """The graph's output type."""
        return self.graph.OutputType

    def get_input_schema(self, config: RunnableConfig | None = None) -> type[BaseModel]:
        """The graph's input schema (what LangServe validates requests against).

        Keep input keys non-nullable: the playground's form renderer fails on ``null``
        alternatives (``Unknown type: {"type":"null"}``); tests/test_serving.py checks it renders.
        """
        return self.graph.get_input_schema(config)  # type: ignore[no-any-return]

    def get_output_schema(self, config: RunnableConfig | None = None) -> type[BaseModel]:
        """The graph's output schema."""
        return self.graph.get_output_schema(config)  # type: ignore[no-any-return]

    def invoke(
        self, input: dict[str, Any], config: RunnableConfig | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        """Not supported: the agent nodes are async.

        Raises:
            OrchestrationError: always; use ``ainvoke``.
        """
        raise OrchestrationError(
            f"{self.name!r} runs asynchronously. Fix: call `ainvoke` or `astream`."
        )

    async def ainvoke(
        self, input: dict[str, Any], config: RunnableConfig | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        """Run the graph once and return its output."""
        return await self.graph.ainvoke(input, config)  # type: ignore[no-any-return]

    async def astream(
        self, input: dict[str, Any], config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[dict[str, Any]]:
        """Stream the graph's per-node updates."""
        async for chunk in self.graph.astream(input, config):
            yield chunk


class _ServedOrchestra(_Served):
    """The orchestra for LangServe: a live :class:`OrchestraRuntime` per thread.

    A request's input is one control event on the thread named by ``X-Thread-Id``; the response
    is the thread's board once the tasks of that request are settled (finished or escalated), or
    right after the allocation with ``X-Wait: allocation``. A thread's runtime starts on its
    first request, which first finishes a control run and resumes the task runs a dead server
    left behind.

    Args:
        graph: the control graph compiled without a checkpointer (attached by the lifespan).
        tasks: the task graph, compiled the same way.
        default_thread: the thread of requests that name none.
        durability: LangGraph durability of every run.
    """

    def __init__(self, graph: Any, tasks: Any, *, default_thread: str, durability: str) -> None:
        super().__init__(graph)
        self.tasks = tasks
        self.default_thread = default_thread
        self.durability = durability
        self.runtimes: dict[str, OrchestraRuntime] = {}
        """Open threads, least recently used first (at most :data:`MAX_LIVE_THREADS` idle ones)."""
        self.lease = Lease()
        """Excludes other replicas on the same database (set by the app's lifespan)."""
        self._opening = asyncio.Lock()

    def get_input_schema(self, config: RunnableConfig | None = None) -> type[BaseModel]:
        """The control graph's input schema, its list items typed for the playground's form
        (validation is unchanged: the edge models check each request)."""
        return _OrchestraForm

    def run_config(self, config: RunnableConfig | None) -> RunnableConfig:
        """``config`` with a thread id (the default thread if none)."""
        cfg = ensure_config(config)
        configurable = {"thread_id": self.default_thread, **(cfg.get("configurable") or {})}
        return {**cfg, "configurable": configurable}

    async def runtime(self, thread: str) -> OrchestraRuntime:
        """The thread's live runtime, started on first use."""
        async with self._opening:
            found = self.runtimes.pop(thread, None)
            if found is None:
                found = OrchestraRuntime(
                    self.graph, self.tasks, thread_id=thread, durability=self.durability, lease=self.lease
                )
                await found.start()
            self.runtimes[thread] = found  # the most recently used last
            await self._close_idle_beyond(MAX_LIVE_THREADS)
            return found

    @property
    def threads(self) -> list[str]:
        """The default thread and the open ones: what ``/metrics`` labels (bounded)."""
        return list(dict.fromkeys([self.default_thread, *self.runtimes]))

    async def _close_idle_beyond(self, limit: int) -> None:
        """Close the least recently used idle threads beyond ``limit`` (their state stays in the
        checkpointer; the next request reopens them). Busy threads stay open."""
        for thread, runtime in list(self.runtimes.items())[:-1]:
            if len(self.runtimes) <= limit:
                return
            if runtime.idle() and not runtime.listeners:
                del self.runtimes[thread]
                await runtime.close()

    async def ainvoke(
        self, input: dict[str, Any], config: RunnableConfig | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        """Apply the input on the config's thread; return its board once the input's tasks settle."""
        cfg = self.run_config(config)
        runtime = await self.runtime(cfg["configurable"]["thread_id"])
        await runtime.submit(dict(input or {}))
        if (cfg["configurable"].get("wait") or "completion") == "completion":
            await runtime.wait_for(partial(_settled, _task_ids(input)))
        output = _output(self.graph, runtime.state)
        board = output.get("tasks") or {}
        missing = [t for t in _task_ids(input) if t not in board]  # finished and moved to the history
        retired = await alookup(self.graph.store, runtime.thread_id, missing)
        if retired:
            output["tasks"] = {**board, **{t: item["task"] for t, item in retired.items()}}
        return await self.with_interrupts(output, runtime.thread_id)

    async def with_interrupts(self, output: dict[str, Any], thread: str) -> dict[str, Any]:
        """Add the thread's pending interrupts (escalated tasks waiting for a human; LangGraph's
        ``__interrupt__``) as ``interrupts``, and how to answer them (``resume``)."""
        if not any(t.get("status") == "escalating" for t in (output.get("tasks") or {}).values()):
            return output
        snapshot = await self.graph.aget_state({"configurable": {"thread_id": thread}})
        if snapshot.interrupts:
            output["interrupts"] = [{"id": i.id, "value": i.value} for i in snapshot.interrupts]
            output["resume"] = RESUME_HELP
        return output

    def get_output_schema(self, config: RunnableConfig | None = None) -> type[BaseModel]:
        """The graph's output schema plus ``interrupts`` and ``resume`` (escalations waiting)."""
        base = self.graph.get_output_schema(config)
        return create_model(
            "OrchestraServedOutput",
            __base__=base,
            interrupts=(list[dict[str, Any]], Field(default_factory=list, description="Escalations waiting for a human (LangGraph interrupts).")),
            resume=(str, Field(default="", description="How to answer them.")),
        )

    async def resume(self, thread: str, decisions: Mapping[str, Any]) -> dict[str, Any]:
        """Answer the thread's escalations (``Command(resume=decisions)``); return the board once
        the decided tasks settle again."""
        runtime = await self.runtime(thread)
        await runtime.submit(Command(resume=dict(decisions)))
        await runtime.wait_for(partial(_settled, list(decisions)))
        return await self.with_interrupts(_output(self.graph, runtime.state), thread)

    async def astream(
        self, input: dict[str, Any], config: RunnableConfig | None = None, **kwargs: Any
    ) -> AsyncIterator[dict[str, Any]]:
        """Apply the input; yield each control-run node's update until the input's tasks settle.

        Runs as a traced run (callbacks), so ``astream_log``/``astream_events`` and the
        playground see it start and end.
        """
        cfg = self.run_config(config)

        async def one() -> AsyncIterator[dict[str, Any]]:
            yield input

        async def updates(inputs: AsyncIterator[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
            async for item in inputs:
                async for chunk in self._updates(item, cfg):
                    yield chunk

        async for chunk in self._atransform_stream_with_config(one(), updates, cfg, **kwargs):
            yield chunk

    async def _updates(self, input: dict[str, Any], cfg: RunnableConfig) -> AsyncIterator[dict[str, Any]]:
        runtime = await self.runtime(cfg["configurable"]["thread_id"])
        updates: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        runtime.listeners.append(updates.put_nowait)
        try:
            done = asyncio.ensure_future(self._settle(runtime, input, cfg))
            while not (done.done() and updates.empty()):
                getter = asyncio.ensure_future(updates.get())
                await asyncio.wait([getter, done], return_when=asyncio.FIRST_COMPLETED)
                if getter.done():
                    yield getter.result()
                else:
                    getter.cancel()
            await done
        finally:
            runtime.listeners.remove(updates.put_nowait)

    async def _settle(self, runtime: OrchestraRuntime, input: dict[str, Any], cfg: RunnableConfig) -> None:
        await runtime.submit(dict(input or {}))
        if (cfg["configurable"].get("wait") or "completion") == "completion":
            await runtime.wait_for(partial(_settled, _task_ids(input)))

    async def state(self, thread: str) -> dict[str, Any]:
        """The current values of one thread (empty if it has none)."""
        runtime = self.runtimes.get(thread)
        if runtime is not None:
            return dict(runtime.state)
        snapshot = await self.graph.aget_state({"configurable": {"thread_id": thread}})
        return dict(snapshot.values or {})

    async def aclose(self) -> None:
        """Stop every thread's runtime (task runs in flight resume when the thread is next served)."""
        for runtime in self.runtimes.values():
            await runtime.close()
        self.runtimes.clear()


def _task_ids(input: Mapping[str, Any] | None) -> list[str]:
    return [str(t.get("id")) for t in (input or {}).get(SUBMIT_TASKS) or [] if isinstance(t, Mapping)]


def _settled(task_ids: Sequence[str], state: Mapping[str, Any]) -> bool:
    tasks = state.get("tasks") or {}
    return all((tasks.get(t) or {}).get("status") in _SETTLED for t in task_ids)


def _output(graph: Any, state: Mapping[str, Any]) -> dict[str, Any]:
    keys = graph.output_channels
    return {k: v for k, v in state.items() if k in ([keys] if isinstance(keys, str) else keys)}


def _thread_from_request(
    orchestra: _ServedOrchestra, registry: AgentTypeRegistry, clock: Callable[[], datetime]
) -> Callable[[dict[str, Any], Request], Any]:
    """LangServe drops ``configurable.thread_id``; take it from the header and check the input early."""

    async def modify(config: dict[str, Any], request: Request) -> dict[str, Any]:
        if orchestra.graph.checkpointer is None:
            raise HTTPException(
                503, "The orchestra's persistence is not open (app lifespan not started)."
            )
        thread = request.headers.get(THREAD_HEADER) or orchestra.default_thread
        if not _THREAD_ID.fullmatch(thread):
            raise HTTPException(
                400,
                f"Invalid `{THREAD_HEADER}` {thread[:140]!r}: use 1-128 letters, digits or ._:@-",
            )
        wait = request.headers.get(WAIT_HEADER, "completion").lower()
        if wait not in _WAITS:
            raise HTTPException(400, f"Invalid `{WAIT_HEADER}` {wait[:40]!r}: use one of {list(_WAITS)}.")
        config = {
            **config,
            "configurable": {**(config.get("configurable") or {}), "thread_id": thread, "wait": wait},
        }
        await _check_submission(orchestra, thread, await _inputs(request), registry, clock)
        return config

    return modify


async def _check_agent_input(config: dict[str, Any], request: Request) -> dict[str, Any]:
    """An agent route's input is checked before the run (422 naming the field and the fix)."""
    for item in await _inputs(request):
        parse_model(AgentRequest, item, kind="agent input")
    return config


async def _inputs(request: Request) -> list[Any]:
    try:
        body = await request.json()
    except ValueError:
        return []  # LangServe answers malformed bodies itself
    if not isinstance(body, dict):
        return []
    return [body["input"]] if "input" in body else list(body.get("inputs") or [])


async def _check_submission(
    orchestra: _ServedOrchestra,
    thread: str,
    inputs: list[Any],
    registry: AgentTypeRegistry,
    clock: Callable[[], datetime],
) -> None:
    """Validate agents and tasks against the thread's board before any run (422 with the fix)."""
    for item in inputs:  # the shape first, also for the streaming routes (no run starts)
        try:
            parse_model(OrchestraRequest, item, kind="orchestra input")
        except ConfigurationError as exc:
            raise HTTPException(422, str(exc)) from None
    inputs = [i for i in inputs if isinstance(i, dict) and any(i.values())]
    if not inputs:
        return
    state = await orchestra.state(thread)
    board, registered = state.get("tasks") or {}, state.get("agents") or {}
    try:
        for item in inputs:
            check_strategy(item.get("allocation_strategy"))
            new = accept_agents(
                registered, list(item.get(REGISTER_AGENTS) or []), registry, count_tokens
            )
            known = known_agent_names({**registered, **new}, registry)
            tasks = list(item.get(SUBMIT_TASKS) or [])
            accept_tasks(board, tasks, count_tokens, now=clock(), known_agents=known)
    except _CLIENT_ERRORS as exc:
        raise HTTPException(422, str(exc)) from None


def _add_ops_routes(app: FastAPI, orchestra: _ServedOrchestra) -> None:
    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        saver, store = orchestra.graph.checkpointer, orchestra.graph.store
        body = {
            "ok": saver is not None,
            "checkpointer": _kind(saver),
            "store": _kind(store),
            "default_thread": orchestra.default_thread,
        }
        return JSONResponse(body, status_code=200 if saver is not None else 503)

    @app.post("/orchestra/resume")
    async def resume(request: Request) -> JSONResponse:
        """Answer the escalated tasks of the thread named by ``X-Thread-Id``."""
        if orchestra.graph.checkpointer is None:
            return JSONResponse({"detail": "persistence not open"}, status_code=503)
        thread = request.headers.get(THREAD_HEADER) or orchestra.default_thread
        if not _THREAD_ID.fullmatch(thread):
            return JSONResponse({"detail": f"Invalid `{THREAD_HEADER}` {thread[:140]!r}"}, status_code=400)
        try:
            body = json.loads(await request.body())
        except ValueError:
            body = None
        decisions = body.get("decisions") if isinstance(body, dict) else None
        state = await orchestra.state(thread)
        waiting = {t for t, r in (state.get("tasks") or {}).items() if r.get("status") == "escalating"}
        problem = _check_decisions(decisions, waiting, state.get("agents") or {})
        if problem:
            return JSONResponse({"detail": f"{problem} Fix: {RESUME_HELP}"}, status_code=422)
        assert isinstance(decisions, dict)
        return JSONResponse({"output": await orchestra.resume(thread, decisions)})

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        if orchestra.graph.checkpointer is None:
            return PlainTextResponse("# persistence not open\n", status_code=503)
        states = {thread: await orchestra.state(thread) for thread in reversed(orchestra.threads)}
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))  # OpenMetrics if asked
        return Response(encoder(metrics_registry(states, max_threads=MAX_LIVE_THREADS + 1)), media_type=content_type)


def _check_decisions(decisions: object, waiting: set[str], agents: Mapping[str, Any]) -> str:
    """What is wrong with a resume body's ``decisions`` (empty if nothing)."""
    if not waiting:
        return "No task of this thread is waiting for a decision."
    if not isinstance(decisions, dict) or not decisions:
        return f"`decisions` must be an object of task id -> decision; waiting: {sorted(waiting)}."
    for task_id, decision in decisions.items():
        if task_id not in waiting:
            return f"Task {task_id!r} is not waiting for a decision; waiting: {sorted(waiting)}."
        action = decision.get("action") if isinstance(decision, dict) else decision
        if action not in ESCALATION_OPTIONS:
            return f"`decisions.{task_id}.action`={action!r}: use one of {list(ESCALATION_OPTIONS)}."
        problem = decision_problem(decision if isinstance(decision, dict) else {"action": decision}, agents)
        if problem:
            return f"`decisions.{task_id}`: {problem}."
    return ""


def _add_error_handlers(app: FastAPI) -> None:
    async def client_error(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    for cls in _CLIENT_ERRORS:
        app.add_exception_handler(cls, client_error)


def _add_body_checks(app: FastAPI) -> None:
    """LangServe raises (500) on a body that is not UTF-8, on a JSON ``null`` where it expects an
    object, and on a batch whose ``inputs`` is not a list: answer 422 naming the problem instead."""

    @app.middleware("http")
    async def reject_bad_bodies(request: Request, call_next: Any) -> Response:
        route = request.url.path.rsplit("/", 1)[-1]
        if request.method == "POST" and route in _RUN_ROUTES:
            problem = _body_problem(await request.body(), batch=route == "batch")
            if problem:
                return JSONResponse({"detail": problem}, status_code=422)
        return await call_next(request)  # type: ignore[no-any-return]


def _body_problem(raw: bytes, *, batch: bool) -> str | None:
    """What LangServe would fail on with a 500 in a run route's body, with the fix; else ``None``."""
    try:
        body = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return "The request body is not UTF-8 text. Fix: send a JSON object encoded as UTF-8."
    except ValueError:
        return None  # malformed JSON: LangServe answers it itself (422)
    if not isinstance(body, dict):
        return None
    nulls = [k for k in ("config", "kwargs") if k in body and body[k] is None]
    if nulls:
        return f"`{nulls[0]}` is null. Fix: send an object (for example {{}}) or leave the field out."
    if batch and not isinstance(body.get("inputs"), list):
        return f"`inputs` must be a list of inputs, got {type(body.get('inputs')).__name__}. Fix: send `[{{...}}, ...]`."
    return None


MAX_LIVE_THREADS = 64
"""Threads a server keeps open at once (their control loop in memory, a ``thread`` label in
``/metrics``); beyond that the least recently used idle ones close and reopen on their next
request. Bounds memory and the metric's label count however many threads are served."""

RESUME_HELP = (
    "POST /orchestra/resume with the same X-Thread-Id and {\"decisions\": {task_id: {\"action\": "
    "\"retry\" | \"reassign\" | \"fail\" | \"resolve\", \"result\": ... (resolve), \"reason\": ...}}}"
)
"""How a client answers escalated tasks (shown in responses that carry an interrupt)."""

_RUN_ROUTES = frozenset({"invoke", "batch", "stream", "stream_log", "stream_events"})


class OrchestraCollector(Collector):
    """A ``prometheus_client`` collector over a snapshot of the orchestra threads' state.

    Every numeric counter in a thread's ``metrics`` becomes ``stellar_graph_<name>_total``; the
    board adds the gauges ``stellar_graph_tasks{status}`` and ``stellar_graph_agents``. Samples
    carry a ``thread`` label for at most ``max_threads`` threads (the first in ``states``, which the
    server orders most recent first); the others are summed under ``thread="_other"``, so the label
    count stays bounded however many threads there are.
    """

    def __init__(self, states: Mapping[str, Mapping[str, Any]], *, max_threads: int = 64) -> None:
        self.states, self.max_threads = states, max_threads

    def collect(self) -> Iterator[Metric]:
        """The families, built from the snapshot."""
        counters: dict[str, dict[str, float]] = {}
        tasks: dict[tuple[str, str], float] = {}
        agents: dict[str, float] = {}
        for i, (thread, state) in enumerate(self.states.items()):
            label = thread if i < self.max_threads else "_other"
            for key, value in (state.get("metrics") or {}).items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    name = re.sub(r"[^A-Za-z0-9_]", "_", key).removesuffix("_total")
                    per_thread = counters.setdefault(name, {})
                    per_thread[label] = per_thread.get(label, 0.0) + value
            for status, n in Counter(str(t.get("status")) for t in (state.get("tasks") or {}).values()).items():
                tasks[(label, status)] = tasks.get((label, status), 0.0) + n
            agents[label] = agents.get(label, 0.0) + len(state.get("agents") or {})
        for name, per_thread in sorted(counters.items()):
            family = CounterMetricFamily(f"stellar_graph_{name}", f"State counter `{name}`, summed over runs.",
                                         labels=["thread"])
            for thread, value in per_thread.items():
                family.add_metric([thread], value)
            yield family
        board = GaugeMetricFamily("stellar_graph_tasks", "Tasks by status.", labels=["thread", "status"])
        for (thread, status), count in sorted(tasks.items()):
            board.add_metric([thread, status], count)
        yield board
        team = GaugeMetricFamily("stellar_graph_agents", "Registered agent instances.", labels=["thread"])
        for thread, count in agents.items():
            team.add_metric([thread], count)
        yield team


def metrics_registry(states: Mapping[str, Mapping[str, Any]], *, max_threads: int = 64) -> CollectorRegistry:
    """A registry with the orchestra's collector and the process's (CPU, memory, file descriptors),
    garbage-collector and platform collectors."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(OrchestraCollector(states, max_threads=max_threads))
    ProcessCollector(registry=registry)
    GCCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry


def prometheus_text(states: Mapping[str, Mapping[str, Any]], *, max_threads: int = 64) -> str:
    """Prometheus text exposition (format 0.0.4) of the threads' metrics (:class:`OrchestraCollector`)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(OrchestraCollector(states, max_threads=max_threads))
    return generate_latest(registry).decode()


def _kind(obj: object) -> str | None:
    """``sqlite``/``postgres``/``memory`` from a LangGraph saver or store class."""
    if obj is None:
        return None
    return backend_of(obj) or type(obj).__name__


def _check_thread_id(thread_id: str) -> None:
    if not _THREAD_ID.fullmatch(thread_id):
        raise ConfigurationError(
            f"Invalid default thread id {thread_id!r}. Fix: use 1-128 letters, digits or ._:@- "
            "(starting with a letter or digit).",
            field="thread_id",
            value=thread_id,
        )
