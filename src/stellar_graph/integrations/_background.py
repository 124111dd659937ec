"""Fire-and-forget tasks that are still tracked: bounded, drainable, cancellable on close."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["BackgroundTasks"]

logger = logging.getLogger(__name__)


class BackgroundTasks:
    """A bounded set of background tasks on the running loop.

    Keeping a reference to every task stops the loop from garbage-collecting it mid-flight
    (ruff RUF006); the bound keeps a flood of events from growing memory without limit.

    Args:
        name: prefix of the task names (shows in debuggers and asyncio warnings).
        max_pending: tasks allowed in flight; more are refused (the caller counts them dropped).
    """

    def __init__(self, name: str, *, max_pending: int = 1000) -> None:
        self.name = name
        self.max_pending = max_pending
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def pending(self) -> int:
        """Tasks not finished yet."""
        return len(self._tasks)

    def spawn(
        self, coro: Coroutine[Any, Any, Any], *, on_cancel: Callable[[], None] | None = None
    ) -> bool:
        """Schedule ``coro``; return False (and close it) when full or no loop is running.

        Args:
            coro: the work.
            on_cancel: called if the task ends cancelled, even one cancelled before it started
                (its coroutine's own ``except CancelledError`` never runs then).
        """
        if len(self._tasks) >= self.max_pending:
            coro.close()
            return False
        try:
            task = asyncio.get_running_loop().create_task(
                coro, name=f"{self.name}-{len(self._tasks)}"
            )
        except RuntimeError:
            coro.close()
            return False
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if on_cancel is not None:
            task.add_done_callback(lambda t: on_cancel() if t.cancelled() else None)
        return True

    async def drain(self, max_seconds: float | None = None) -> bool:
        """Wait for every task, including ones spawned meanwhile; True if none is left."""
        loop = asyncio.get_running_loop()
        deadline = None if max_seconds is None else loop.time() + max_seconds
        while self._tasks:
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                return False
            await asyncio.wait(set(self._tasks), timeout=left)
        return True

    async def cancel(self) -> int:
        """Cancel what is still running and wait for it to unwind; return how many were cancelled."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return len(tasks)
