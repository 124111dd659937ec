"""Event handlers for the facade: ``orchestra.on("task_completed", handler)``.

Events are the dicts that nodes append to the state's ``events`` key (``{"type": ..., ...}``),
delivered to handlers as the run streams them. Handlers may be sync or async. A handler that
raises is logged and counted; it never breaks orchestration.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

__all__ = ["ALIASES", "EVENT_TYPES", "EventHandler", "EventHub"]

logger = logging.getLogger(__name__)

EventHandler = Callable[[dict[str, Any]], Awaitable[None] | None]
ALIASES = {"task_failure": "task_failed", "task_completion": "task_completed"}
"""The seed's event names for the same events."""
EVENT_TYPES = frozenset(
    {
        "task_failure",
        "task_completion",
        "task_degraded",
        "system_optimized",
        "task_escalating",
        "escalation_resolved",
        "maintenance",
        "agent_recovered",
        "collaboration_started",
        "collaboration_queued",
        "collaboration_rejected",
        "collaboration_invalid",
        "collaboration_subtask_completed",
        "collaboration_subtask_failed",
        "collaboration_conflict",
        "collaboration_conflict_resolved",
        "collaboration_finished",
        "escalation_invalid",
        "agent_registered",
        "task_allocated",
        "task_queued",
        "task_refused",
        "task_completed",
        "task_failed",
        "task_reassigned",
        "agent_failure",
        "workload_imbalance",
        "system_alert",
        "emergency",
        "*",
    }
)


class EventHub:
    """Handlers by event type; ``"*"`` receives every event."""

    def __init__(self) -> None:
        self._handlers: dict[str, list[EventHandler]] = {}
        self.handler_errors = 0

    def on(self, event: str, handler: EventHandler) -> None:
        """Register ``handler`` for ``event``.

        Raises:
            ValueError: unknown event type (the allowed ones are listed).
        """
        if event not in EVENT_TYPES:
            raise ValueError(f"Unknown event {event!r}; allowed: {sorted(EVENT_TYPES)}.")
        self._handlers.setdefault(ALIASES.get(event, event), []).append(handler)

    def off(self, event: str, handler: EventHandler) -> None:
        """Remove a handler registered with :meth:`on` (no error if absent)."""
        handlers = self._handlers.get(ALIASES.get(event, event), [])
        if handler in handlers:
            handlers.remove(handler)

    async def emit(self, event: dict[str, Any]) -> None:
        """Call every handler of the event's type, then the ``"*"`` handlers."""
        for handler in [*self._handlers.get(event.get("type", ""), []), *self._handlers.get("*", [])]:
            try:
                outcome = handler(event)
                if inspect.isawaitable(outcome):
                    await outcome
            except asyncio.CancelledError:
                raise
            except Exception:
                self.handler_errors += 1
                logger.warning("event handler %r failed on %s", handler, event.get("type"), exc_info=True)
