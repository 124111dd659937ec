"""`inline`: run a small synchronous node or router on the event loop, not in a thread;
`routed`: a node that names its next node itself.

LangGraph runs a synchronous node, router or error handler of a graph invoked with ``ainvoke`` /
``astream`` in the default thread pool (``run_in_executor``): a thread hop, a context copy and a
wait for the GIL on every call. Ours take microseconds (routing, stamping, packaging a report),
so the hop costs far more than the work, on every control run and task run.

A conditional edge routes on a fresh copy of every channel with the node's writes applied
(LangGraph's ``local_read``): on the control graph's ~20 channels that copy cost more than the
node it follows. A router that only needs the node's *input* can run inside the node instead
(:func:`routed`), which returns ``Command(update=..., goto=...)``; the node is added with
``destinations=`` so Studio draws the same edges.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar

from langgraph.types import Command

__all__ = ["inline", "routed"]

_P = ParamSpec("_P")
_R = TypeVar("_R")


def inline(fn: Callable[_P, _R]) -> Callable[_P, Awaitable[_R]]:
    """The same function as a coroutine function (LangGraph reads its signature through
    ``__wrapped__``: ``config``, ``runtime`` and ``error`` are still passed)."""

    @functools.wraps(fn)
    async def run(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        return fn(*args, **kwargs)

    return run


def routed(node: Callable[..., Awaitable[Any]], route: Callable[[Any], str]) -> Callable[..., Awaitable[Command[Any]]]:
    """``node``, then ``Command(update=<its update>, goto=route(state))`` with ``state`` its input.

    Only for routers whose answer the node's own update cannot change (add the node with
    ``destinations=`` listing ``route``'s answers)."""

    @functools.wraps(node)
    async def run(state: Any, *args: Any, **kwargs: Any) -> Command[Any]:
        return Command(update=await node(state, *args, **kwargs), goto=route(state))

    return run
