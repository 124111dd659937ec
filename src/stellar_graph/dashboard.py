"""The live dashboard of ``stellar-graph serve``: ``/dashboard``.

A page (plain HTML, CSS and JavaScript shipped in the wheel under ``_static/dashboard``: no CDN, it
works offline) that shows one orchestra thread as it runs: agents with their load and health, the
task board (queued, running, finished, refused) with each allocation's factor breakdown,
explanation, runners-up and predicted completion interval, and the event stream. It reads:

- ``GET /dashboard/api/board?thread=T``: the thread's state (agents, tasks, allocations,
  collaborations, events, metrics), as the orchestra checkpointed it;
- ``GET /dashboard/api/summary?thread=T``: the metrics tree of :mod:`stellar_graph.metrics`
  (latency percentiles, throughput, utilisation, the routing/work token split, the learner's
  score), which the page asks for every few seconds;
- ``GET /dashboard/api/stream?thread=T``: Server-Sent Events, one ``delta`` per control-run step
  (the records that step changed: tasks, agents, allocations, events), pushed as the runtime
  applies them, with a comment every 15 s to keep proxies from closing the stream.

Escalated tasks show their options; the page answers them through ``POST /orchestra/resume``.
The routes sit behind the server's API key (header or the browser's login cookie).

``stellar-graph dashboard`` (:func:`create_dashboard_app`) shows a data directory or database
without running anything: it reads the checkpoints, and its stream compares the thread's latest
checkpoint every half second, so it can watch an orchestra that another process runs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import orjson
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles

__all__ = [
    "STATIC_DIR",
    "BoardSource",
    "CheckpointBoard",
    "LiveBoard",
    "add_dashboard",
    "board_delta",
    "create_dashboard_app",
    "state_delta",
]

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("_static") / "dashboard"
_KEYS = ("agents", "tasks", "allocations", "collaborations", "events", "metrics")
_HEARTBEAT_SECONDS = 15.0
_QUEUE = 10_000


class _Orchestra(Protocol):
    default_thread: str

    async def state(self, thread: str) -> dict[str, Any]: ...

    async def runtime(self, thread: str) -> Any: ...


class BoardSource(Protocol):
    """Where the dashboard reads a thread: its state, and the changes to it as they come."""

    default_thread: str

    async def state(self, thread: str) -> dict[str, Any]:
        """The thread's current values."""
        ...

    def deltas(self, thread: str) -> AsyncGenerator[dict[str, Any] | None]:
        """Each change (a delta stamped ``emitted_at``), or ``None`` after a quiet heartbeat
        interval; the stream stops when the client leaves."""
        ...


def _lean(key: str, records: Mapping[str, Any]) -> dict[str, Any]:
    """Records as the page needs them: a task without its agent's full ``report`` (the task keeps
    its result, error and timings), about half the bytes of a board."""
    if key != "tasks":
        return dict(records)
    return {k: ({f: v for f, v in r.items() if f != "report"} if isinstance(r, Mapping) else r) for k, r in records.items()}


def board_json(thread: str, state: Mapping[str, Any]) -> Response:
    """The board of one thread, serialised with orjson (a 1,000-task board is about 1 MB)."""
    body = {"thread": thread, **{k: _lean(k, state.get(k) or {}) if k != "events" else state.get(k) or [] for k in _KEYS}}
    return Response(orjson.dumps(body, default=str), media_type="application/json")


def summary_json(state: Mapping[str, Any]) -> Response:
    """The metrics tree of one thread's state."""
    from stellar_graph.metrics import performance_metrics

    return Response(orjson.dumps(performance_metrics(state), default=str), media_type="application/json")


def _thread(thread: str | None, default: str) -> str:
    """The thread a dashboard request names (its default if none).

    Raises:
        HTTPException: 422 for a thread id the server would not accept.
    """
    from stellar_graph._serving_ui import THREAD_ID

    name = thread or default
    if not THREAD_ID.fullmatch(name):
        raise HTTPException(422, f"Invalid `thread` {name[:140]!r}. Fix: 1-128 letters, digits or ._:@- "
                                 "starting with a letter or digit.")
    return name


def _sse(delta: Mapping[str, Any]) -> str:
    return f"event: delta\ndata: {orjson.dumps(delta, default=str).decode()}\n\n"


def board_delta(chunk: Mapping[str, Any]) -> dict[str, Any]:
    """The records one ``updates`` chunk (node name -> update) changed, merged over its nodes."""
    delta: dict[str, Any] = {}
    for update in chunk.values():
        if not isinstance(update, Mapping):
            continue
        for key in ("agents", "tasks", "allocations", "collaborations"):
            part = update.get(key)
            if isinstance(part, Mapping) and part:
                delta.setdefault(key, {}).update(_lean(key, part))
        events = update.get("events")
        if isinstance(events, list) and events:
            delta.setdefault("events", []).extend(events)
    return delta


def state_delta(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """The records that differ between two states (``None`` for a record that left), and the
    events ``after`` has beyond ``before``'s last one."""
    delta: dict[str, Any] = {}
    for key in ("agents", "tasks", "allocations", "collaborations"):
        old, new = before.get(key) or {}, after.get(key) or {}
        changed = {k: v for k, v in new.items() if old.get(k) != v}
        changed.update(dict.fromkeys(set(old) - set(new)))
        if changed:
            delta[key] = _lean(key, changed)
    old_events, new_events = before.get("events") or [], after.get("events") or []
    last = old_events[-1].get("event_id") if old_events else None
    ids = [e.get("event_id") for e in new_events]
    fresh = new_events[ids.index(last) + 1 :] if last is not None and last in ids else new_events if not old_events else []
    if fresh:
        delta["events"] = fresh
    return delta


class LiveBoard:
    """A served orchestra as the dashboard's source: deltas from its runtime's ``updates``."""

    def __init__(self, orchestra: _Orchestra) -> None:
        self.orchestra = orchestra
        self.default_thread = orchestra.default_thread

    async def state(self, thread: str) -> dict[str, Any]:
        return await self.orchestra.state(thread)

    async def deltas(self, thread: str) -> AsyncGenerator[dict[str, Any] | None]:
        runtime = await self.orchestra.runtime(thread)
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=_QUEUE)

        def on_update(chunk: dict[str, Any]) -> None:
            delta = board_delta(chunk)
            if delta and not queue.full():
                queue.put_nowait({**delta, "emitted_at": time.time()})  # the page measures its lag from here

        runtime.listeners.append(on_update)
        try:
            while True:
                try:
                    yield await asyncio.wait_for(queue.get(), _HEARTBEAT_SECONDS)
                except TimeoutError:
                    yield None
        finally:
            if on_update in runtime.listeners:
                runtime.listeners.remove(on_update)


class CheckpointBoard:
    """A data directory or database as the dashboard's source, read-only: nothing is run, and
    the thread's latest checkpoint is compared every ``poll_seconds``."""

    def __init__(self, graph: Any, default_thread: str, *, poll_seconds: float = 0.5) -> None:
        self.graph, self.default_thread, self.poll_seconds = graph, default_thread, poll_seconds

    async def state(self, thread: str) -> dict[str, Any]:
        snapshot = await self.graph.aget_state({"configurable": {"thread_id": thread}})
        return dict(snapshot.values or {})

    async def deltas(self, thread: str) -> AsyncGenerator[dict[str, Any] | None]:
        before, quiet = await self.state(thread), 0.0
        while True:
            await asyncio.sleep(self.poll_seconds)
            after = await self.state(thread)
            delta, before = state_delta(before, after), after
            if delta:
                quiet = 0.0
                yield {**delta, "emitted_at": time.time()}
            else:
                quiet += self.poll_seconds
                if quiet >= _HEARTBEAT_SECONDS:
                    quiet = 0.0
                    yield None


def add_dashboard(app: FastAPI, source: BoardSource) -> None:
    """Add the page, its static files and its API routes to ``app``, reading ``source``."""
    app.mount("/dashboard/static", StaticFiles(directory=STATIC_DIR), name="dashboard-static")

    @app.get("/dashboard", include_in_schema=False)
    async def page() -> Response:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/dashboard/api/board", include_in_schema=False)  # the page's own API, documented above
    async def board(thread: str | None = None) -> Response:
        """The thread's current state for the dashboard."""
        name = _thread(thread, source.default_thread)
        return board_json(name, await source.state(name))

    @app.get("/dashboard/api/summary", include_in_schema=False)
    async def summary(thread: str | None = None) -> Response:
        """The thread's metrics tree."""
        return summary_json(await source.state(_thread(thread, source.default_thread)))

    @app.get("/dashboard/api/stream", include_in_schema=False)
    async def stream(request: Request, thread: str | None = None) -> StreamingResponse:
        """Server-Sent Events: a ``delta`` for every change of the thread."""
        deltas = source.deltas(_thread(thread, source.default_thread))

        async def events() -> AsyncIterator[str]:
            try:
                yield "retry: 1000\n\n"
                async for delta in deltas:
                    if await request.is_disconnected():
                        break
                    yield _sse(delta) if delta is not None else ": keep-alive\n\n"
            finally:
                await deltas.aclose()

        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


def create_dashboard_app(config: Any, *, thread: str, poll_seconds: float = 0.5, api_key_env: str = "STELLAR_GRAPH_API_KEY") -> FastAPI:
    """The dashboard alone, over a data directory or database (``stellar-graph dashboard``).

    Args:
        config: the orchestra config whose ``persistence`` holds the threads.
        thread: the thread shown when the page names none.
        poll_seconds: how often the stream reads the thread's latest checkpoint.
        api_key_env: the API key variable, as for ``serve`` (unset: no auth).
    """
    from contextlib import asynccontextmanager

    from stellar_graph._serving_ui import API_KEY_HEADER, add_auth, api_key_from_env
    from stellar_graph.config import OrchestraConfig
    from stellar_graph.graph import create_orchestra
    from stellar_graph.persistence import open_persistence

    cfg = OrchestraConfig.load(config)
    graph = create_orchestra(cfg).compile(name="orchestra")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_persistence(cfg.persistence) as (saver, store):
            graph.checkpointer, graph.store = saver, store
            yield

    app = FastAPI(title="stellar_graph dashboard", lifespan=lifespan)
    add_dashboard(app, CheckpointBoard(graph, thread, poll_seconds=poll_seconds))

    @app.get("/", include_in_schema=False)
    async def home() -> Response:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    add_auth(app, api_key_from_env(api_key_env), header=API_KEY_HEADER)
    return app
