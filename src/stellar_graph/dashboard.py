"""The live dashboard of ``stellar-graph serve``: ``/dashboard``.

A page (plain HTML, CSS and JavaScript shipped in the wheel under ``_static/dashboard``: no CDN, it
works offline) that shows one orchestra thread as it runs: agents with their load and health, the
task board (queued, running, finished, refused) with each allocation's factor breakdown,
explanation, runners-up and predicted completion interval, and the event stream. It reads:

- ``GET /dashboard/api/board?thread=T``: the thread's state (agents, tasks, allocations,
  collaborations, events, metrics), as the orchestra checkpointed it;
- ``GET /dashboard/api/stream?thread=T``: Server-Sent Events, one ``delta`` per control-run step
  (the records that step changed: tasks, agents, allocations, events), pushed as the runtime
  applies them, with a comment every 15 s to keep proxies from closing the stream.

Escalated tasks show their options; the page answers them through ``POST /orchestra/resume``.
The routes sit behind the server's API key (header or the browser's login cookie).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["STATIC_DIR", "add_dashboard", "board_delta"]

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("_static") / "dashboard"
_KEYS = ("agents", "tasks", "allocations", "collaborations", "events", "metrics")
_HEARTBEAT_SECONDS = 15.0
_QUEUE = 10_000


class _Orchestra(Protocol):
    default_thread: str

    async def state(self, thread: str) -> dict[str, Any]: ...

    async def runtime(self, thread: str) -> Any: ...


def board_delta(chunk: Mapping[str, Any]) -> dict[str, Any]:
    """The records one ``updates`` chunk (node name -> update) changed, merged over its nodes."""
    delta: dict[str, Any] = {}
    for update in chunk.values():
        if not isinstance(update, Mapping):
            continue
        for key in ("agents", "tasks", "allocations", "collaborations"):
            part = update.get(key)
            if isinstance(part, Mapping) and part:
                delta.setdefault(key, {}).update(part)
        events = update.get("events")
        if isinstance(events, list) and events:
            delta.setdefault("events", []).extend(events)
    return delta


def add_dashboard(app: FastAPI, orchestra: _Orchestra) -> None:
    """Add the page, its static files and its two API routes to ``app``."""
    app.mount("/dashboard/static", StaticFiles(directory=STATIC_DIR), name="dashboard-static")

    @app.get("/dashboard", include_in_schema=False)
    async def page() -> Response:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/dashboard/api/board")
    async def board(thread: str | None = None) -> JSONResponse:
        """The thread's current state for the dashboard."""
        name = thread or orchestra.default_thread
        state = await orchestra.state(name)
        return JSONResponse({"thread": name, **{k: state.get(k) or ({} if k != "events" else []) for k in _KEYS}})

    @app.get("/dashboard/api/stream")
    async def stream(request: Request, thread: str | None = None) -> StreamingResponse:
        """Server-Sent Events: a ``delta`` for every control-run step of the thread."""
        runtime = await orchestra.runtime(thread or orchestra.default_thread)
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=_QUEUE)

        def on_update(chunk: dict[str, Any]) -> None:
            delta = board_delta(chunk)
            if delta and not queue.full():
                queue.put_nowait(delta)

        runtime.listeners.append(on_update)

        async def events() -> AsyncIterator[str]:
            try:
                yield "retry: 1000\n\n"
                while not await request.is_disconnected():
                    try:
                        delta = await asyncio.wait_for(queue.get(), _HEARTBEAT_SECONDS)
                    except TimeoutError:
                        yield ": keep-alive\n\n"
                        continue
                    yield f"event: delta\ndata: {json.dumps(delta, default=str)}\n\n"
            finally:
                if on_update in runtime.listeners:
                    runtime.listeners.remove(on_update)

        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(events(), media_type="text/event-stream", headers=headers)
