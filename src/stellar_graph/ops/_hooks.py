"""What the operations mixin reads from the facade, in one place.

The facade exposes most of what operations need as public hooks (``runs_paused``,
``pause_runs``, ``stop_intake``, ``emit``...). Four readings have no public hook yet: whether a
run is in flight, how many runs wait in the queue, whether the worker is alive, and the event
hub's handler-error count; and there is no public way to re-read the state after an
out-of-band update, nor to reach the configured notifier. Until the facade grows
``runtime_status()``, ``refresh_state()`` and a ``notifier`` property, these helpers read its
internals, so that a rename breaks here and nowhere else.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

__all__ = [
    "STORE_NAMESPACE",
    "load_doc",
    "notifier_of",
    "refresh_state",
    "runtime_status",
    "save_doc",
    "wait_quiet",
]

STORE_NAMESPACE = ("stellar_graph", "operations")
"""Store namespace of the operations document (one per thread): pruned-task summary, node timings."""


def runtime_status(orchestra: Any) -> dict[str, Any]:
    """``started``, ``worker_alive``, ``run_in_flight``, ``queued_runs``, ``paused``,
    ``intake_open`` and ``handler_errors`` of the facade."""
    return dict(orchestra.runtime_status())


async def refresh_state(orchestra: Any) -> None:
    """Re-read the thread's state into the facade after an out-of-band update."""
    await orchestra.refresh_state()


def notifier_of(orchestra: Any) -> Any:
    """The notifier that ``configure_notifications`` set up, or ``None``."""
    hook = getattr(type(orchestra), "notifier", None)
    if hook is not None:
        return orchestra.notifier
    state = orchestra.__dict__.get("_stellar_integrations")
    return getattr(state, "notifier", None)


async def wait_quiet(orchestra: Any, seconds: float | None) -> bool:
    """Wait until no run is in flight; False if one still is after ``seconds``."""
    deadline = None if seconds is None else time.monotonic() + seconds
    while runtime_status(orchestra)["run_in_flight"]:
        if deadline is not None and time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.01)
    return True


async def load_doc(store: Any, thread_id: str) -> dict[str, Any]:
    """The thread's operations document from the Store (empty without a store or document)."""
    if store is None:
        return {}
    item = await store.aget(STORE_NAMESPACE, thread_id)
    return dict(item.value) if item is not None else {}


async def save_doc(store: Any, thread_id: str, doc: Mapping[str, Any]) -> None:
    """Persist the operations document (no-op without a store)."""
    if store is not None:
        await store.aput(STORE_NAMESPACE, thread_id, dict(doc))
