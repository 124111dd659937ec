"""`inline`: run a small synchronous node or router on the event loop, not in a thread.

LangGraph runs a synchronous node, router or error handler of a graph invoked with ``ainvoke`` /
``astream`` in the default thread pool (``run_in_executor``): a thread hop, a context copy and a
wait for the GIL on every call. Ours take microseconds (routing, stamping, packaging a report),
so the hop costs far more than the work, on every control run and task run.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

__all__ = ["inline"]

_P = ParamSpec("_P")
_R = TypeVar("_R")


def inline(fn: Callable[_P, _R]) -> Callable[_P, Awaitable[_R]]:
    """The same function as a coroutine function (LangGraph reads its signature through
    ``__wrapped__``: ``config``, ``runtime`` and ``error`` are still passed)."""

    @functools.wraps(fn)
    async def run(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        return fn(*args, **kwargs)

    return run
