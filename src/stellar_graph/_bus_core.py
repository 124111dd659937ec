"""The machinery behind :class:`stellar_graph.bus.AdvancedMessageBus`.

State of one message (an :class:`Envelope`) is a status per recipient::

    queued ──receive──> delivered ──ack──> acked
      │  ^                  │ (requires_ack: no ack within ack_timeout)
      │  └── redelivery ────┤   attempts < max_attempts
      │                     └─> dead-letter   (attempts == max_attempts)
      ├──TTL passed at dequeue──> expired
      └──shed / recipient unregistered──> dead-letter

``delivered`` is final for messages that do not require acks. Every status change goes through
:meth:`BusCore._set`, which keeps the per-message counters, the queue bound, the receipts and
the durable store in step.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import itertools
import logging
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from heapq import heappop, heappush
from typing import Any, Final

from stellar_graph import _bus_state
from stellar_graph._bus_message import Envelope, encode_json
from stellar_graph._bus_registry import Registry
from stellar_graph._bus_store import DurableStore
from stellar_graph.errors import ConfigurationError, QueueFullError, UnknownAgentError

__all__ = [
    "ACKED",
    "DEAD",
    "DELIVERED",
    "EXPIRED",
    "QUEUED",
    "BusCore",
    "Handler",
    "check_bus_args",
]

logger = logging.getLogger(__name__)

QUEUED: Final = "queued"
DELIVERED: Final = "delivered"
ACKED: Final = "acked"
EXPIRED: Final = "expired"
DEAD: Final = "dead-letter"
_FINAL: Final = frozenset({ACKED, EXPIRED, DEAD})
Handler = Callable[[Envelope], Any]
# Queue and inbox entries: (-priority, seq, envelope). seq is unique, so payloads never compare.
Entry = tuple[int, int, Envelope]
_ROUTER_TURN: Final = 1024  # most deliveries the router makes before yielding the loop


class _Inbox:
    __slots__ = ("heap", "waiters")

    def __init__(self) -> None:
        self.heap: list[Entry] = []
        self.waiters: deque[asyncio.Future[None]] = deque()


class BusCore:
    """Queue, router, inboxes and per-recipient state; the public API lives in the subclass."""

    def __init__(
        self,
        *,
        capacity: int,
        batch: int,
        ack_timeout: float,
        max_attempts: int,
        clock: Callable[[], float],
        max_bytes: int,
        history_limit: int,
        dead_letter_limit: int,
    ) -> None:
        self._capacity = capacity
        self._batch = batch
        self._ack_timeout = float(ack_timeout)
        self._max_attempts = max_attempts
        self._clock = clock
        self._max_bytes = max_bytes
        self._history_limit = history_limit
        self._registry = Registry()
        self._heap: list[Entry] = []  # the priority queue in front of the router
        self._inboxes: dict[str, _Inbox] = {}
        # Messages with a recipient still waiting, per priority, oldest first: the queue bound
        # and the shedding victim (lowest priority, newest) come from here in O(1).
        self._buckets: list[dict[int, Envelope]] = [{} for _ in range(11)]
        self._depth = 0
        self._live: dict[str, Envelope] = {}
        self._history: OrderedDict[str, dict[str, str]] = OrderedDict()
        self._attempts: dict[tuple[str, str], int] = {}  # (agent, message) -> deliveries so far
        self._deadlines: list[tuple[float, int, str, Envelope, int]] = []  # ack deadlines heap
        self._dead: deque[dict[str, Any]] = deque(maxlen=dead_letter_limit)
        self._subs: dict[str, tuple[Handler, frozenset[str] | None, frozenset[str] | None]] = {}
        self._tasks: set[asyncio.Future[Any]] = set()
        self._ids = itertools.count(1)
        self._seq = 0
        self._ttl_live = 0
        self._n = dict.fromkeys(_bus_state.COUNTERS, 0)
        self._router: asyncio.Task[None] | None = None
        self._router_wake: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due = 0.0
        self._store: DurableStore | None = None

    def _admit(self, env: Envelope) -> None:
        if self._depth < self._capacity:
            return
        if self._ttl_live:
            self._purge_expired()
            if self._depth < self._capacity:
                return
        lowest = next(p for p in range(1, 11) if self._buckets[p])
        if env.priority_level > lowest:
            bucket = self._buckets[lowest]
            self._n["shed"] += 1
            self._dead_letter_queued(bucket[next(reversed(bucket))], "shed")
            return
        self._n["refused"] += 1
        raise QueueFullError(
            env.message_id,
            queue_size=self._capacity,
            priority_level=env.priority_level,
            lowest_queued=lowest,
        )

    def _accept(self, env: Envelope) -> None:
        self._seq += 1
        env._seq = seq = self._seq
        recipients = env.recipients
        if len(recipients) == 1:
            env._status = {recipients[0]: QUEUED}
            env._queued = env._open = 1
        else:
            env._status = dict.fromkeys(recipients, QUEUED)
            env._queued = env._open = len(recipients)
        if env.ttl_seconds is not None:
            env._expires = self._clock() + env.ttl_seconds
            self._ttl_live += 1
        self._buckets[env.priority_level][seq] = env
        self._depth += 1
        self._live[env.message_id] = env
        self._n["sent"] += 1

    def _on_commit(self, envs: list[Envelope], error: BaseException | None) -> None:
        if error is not None:
            for env in envs:
                _bus_state.forget(self, env)
            return
        for env in envs:
            if env._queued:
                heappush(self._heap, (-env.priority_level, env._seq, env))
        if envs:
            self._wake_router()

    def _wake_router(self) -> None:
        wake = self._router_wake
        if wake is not None:
            self._router_wake = None
            if not wake.done():
                wake.set_result(None)
        elif self._router is None or self._router.done():
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop yet: drain() routes synchronously, receive() starts it
                return
            self._router = loop.create_task(self._route_forever(), name="stellar-bus-router")
            self._router.add_done_callback(_router_died)

    async def _route_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if self._heap:
                self._route(_ROUTER_TURN)
                await asyncio.sleep(0)  # let receivers run between turns
            else:
                self._router_wake = loop.create_future()
                await self._router_wake

    def _route(self, budget: int, *, whole: bool = False) -> None:
        """Move up to ``budget`` recipient deliveries from the queue into inboxes.

        A message with several recipients is handed out ``broadcast_batch_size`` recipients at a
        time, and each batch ends the call unless ``whole``; the router yields the loop between
        calls, so a big broadcast never holds it and more urgent traffic can overtake its rest.
        """
        heap = self._heap
        while heap and budget > 0:
            entry = heap[0]
            env = entry[2]
            start = env._routed
            if start == 0:
                if not env._queued:
                    heappop(heap)
                    continue
                if env._expires is not None and env._expires <= self._clock():
                    heappop(heap)
                    self._expire_queued(env)
                    continue
                if self._subs:
                    self._notify(env)
            recipients = env.recipients
            if len(recipients) == 1:  # unicast: the common case, no batching to track
                heappop(heap)
                env._routed = 1
                budget -= 1
                if env._status[recipients[0]] == QUEUED:
                    self._push_inbox(recipients[0], entry)
                continue
            end = min(len(recipients), start + min(budget, self._batch))
            status = env._status
            for r in recipients[start:end]:
                if status[r] == QUEUED:
                    self._push_inbox(r, entry)
            env._routed = end
            budget -= end - start
            if end == len(recipients):
                heappop(heap)
            if not whole:
                return

    def _push_inbox(self, agent_id: str, entry: tuple[int, int, Envelope]) -> None:
        box = self._inboxes.get(agent_id)
        if box is None:  # recovered traffic for an agent not registered (yet)
            box = self._inboxes[agent_id] = _Inbox()
        heappush(box.heap, entry)
        waiters = box.waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break

    def _inbox(self, agent_id: str) -> _Inbox:
        box = self._inboxes.get(agent_id)
        if box is None or agent_id not in self._registry.agents:
            raise UnknownAgentError(agent_id, list(self._registry.agents))
        return box

    def _take(self, box: _Inbox, agent_id: str) -> Envelope | None:
        heap = box.heap
        queue = self._heap
        # Route first whatever could precede the inbox's best entry, so a message still in the
        # priority queue is never overtaken by a less urgent one already routed.
        while queue and (not heap or _precedes(queue[0], heap[0])):
            self._route(self._batch)
        while heap:
            env = heappop(heap)[2]
            status = env._status
            if status.get(agent_id) != QUEUED:
                continue  # shed, expired or acked while waiting
            if env._expires is not None and env._expires <= self._clock():
                self._n["expired"] += 1
                self._set(env, agent_id, EXPIRED)
                continue
            self._n["delivered"] += 1
            if env.requires_ack:
                key = (agent_id, env.message_id)
                attempt = self._attempts[key] = self._attempts.get(key, 0) + 1
                due = self._clock() + self._ack_timeout
                heappush(self._deadlines, (due, next(self._ids), agent_id, env, attempt))
                self._arm_timer()
            elif env._open == 1:  # its last recipient: what _set would do, minus the branches
                status[agent_id] = DELIVERED
                env._queued = env._open = 0
                del self._buckets[env.priority_level][env._seq]
                self._depth -= 1
                self._finish(env)
                return env
            self._set(env, agent_id, DELIVERED)
            return env
        return None

    async def _wait(self, box: _Inbox, agent_id: str, deadline: float | None) -> Envelope | None:
        loop = asyncio.get_running_loop()
        while True:
            waiter = loop.create_future()
            box.waiters.append(waiter)
            try:
                if deadline is None:
                    await waiter
                else:
                    async with asyncio.timeout_at(deadline):
                        await waiter
            except TimeoutError:
                if waiter in box.waiters:
                    box.waiters.remove(waiter)
                return None
            env = self._take(box, agent_id)
            if env is not None:
                return env

    def _poll_timeouts(self) -> int:
        now = self._clock()
        deadlines = self._deadlines
        count = 0
        while deadlines and deadlines[0][0] <= now:
            _, _, agent_id, env, attempt = heappop(deadlines)
            if env._status.get(agent_id) != DELIVERED:
                continue  # acked, dead or requeued since
            if self._attempts.get((agent_id, env.message_id)) != attempt:
                continue
            count += 1
            if attempt >= self._max_attempts:
                self._dead_letter(env, [agent_id], f"ack timeout after {attempt} attempts")
            else:
                self._n["redelivered"] += 1
                self._set(env, agent_id, QUEUED)
                self._push_inbox(agent_id, (-env.priority_level, env._seq, env))
        return count

    def _arm_timer(self) -> None:
        due = self._deadlines[0][0]
        if self._timer is not None and self._timer_due <= due:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # polled on the next receive/drain instead
        if self._timer is not None:
            self._timer.cancel()
        self._timer_due = due
        self._timer = loop.call_later(max(0.0, due - self._clock()), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._poll_timeouts()
        if self._deadlines:
            self._arm_timer()

    def _set(self, env: Envelope, agent_id: str, new: str) -> None:
        """Move one recipient of ``env`` to state ``new`` and keep every count in step."""
        status = env._status
        old = status[agent_id]
        status[agent_id] = new
        if old == QUEUED:
            env._queued -= 1
            if not env._queued:
                del self._buckets[env.priority_level][env._seq]
                self._depth -= 1
        elif new == QUEUED:
            if not env._queued:
                self._buckets[env.priority_level][env._seq] = env
                self._depth += 1
            env._queued += 1
        if new in _FINAL or (new == DELIVERED and not env.requires_ack):
            env._open -= 1
            if not env._open:
                self._finish(env)
                return
        if self._store is not None:
            attempts = self._attempts.get((agent_id, env.message_id), 0)
            self._store.update(env._seq, agent_id, new, attempts)

    def _finish(self, env: Envelope) -> None:
        mid = env.message_id
        del self._live[mid]
        if env._expires is not None:
            self._ttl_live -= 1
        if env.requires_ack:
            for r in env.recipients:
                self._attempts.pop((r, mid), None)
        history = self._history
        history[mid] = env._status
        if len(history) > self._history_limit:
            history.popitem(last=False)
        if self._store is not None:
            self._store.finish(env._seq)

    def _expire_queued(self, env: Envelope) -> None:
        for r in [r for r, s in env._status.items() if s == QUEUED]:
            self._n["expired"] += 1
            self._set(env, r, EXPIRED)

    def _purge_expired(self) -> None:
        now = self._clock()
        for bucket in self._buckets:
            for env in [e for e in bucket.values() if e._expires is not None and e._expires <= now]:
                self._expire_queued(env)

    def _dead_letter_queued(self, env: Envelope, reason: str) -> None:
        self._dead_letter(env, [r for r, s in env._status.items() if s == QUEUED], reason)

    def _dead_letter(self, env: Envelope, recipients: list[str], reason: str) -> None:
        for r in recipients:
            self._set(env, r, DEAD)
        self._n["dead_lettered"] += len(recipients)
        record = {
            "message": env.to_dict(),
            "recipients": recipients,
            "reason": reason,
            "at": datetime.now(UTC).isoformat(),
        }
        self._dead.append(record)
        if self._store is not None:
            self._store.dead_letter(encode_json(record))

    def _notify(self, env: Envelope) -> None:
        for token, (handler, types, senders) in list(self._subs.items()):
            if (types is not None and env.message_type not in types) or (
                senders is not None and env.sender not in senders
            ):
                continue
            try:
                result = handler(env)
            except Exception as exc:  # a subscriber must never break delivery
                self._handler_failed(token, env.message_id, exc)
                continue
            if inspect.isawaitable(result):
                task = asyncio.ensure_future(result)
                self._tasks.add(task)
                task.add_done_callback(functools.partial(self._done, token, env.message_id))

    def _done(self, token: str, message_id: str, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._handler_failed(token, message_id, task.exception())  # type: ignore[arg-type]

    def _handler_failed(self, token: str, message_id: str, exc: BaseException) -> None:
        self._n["handler_errors"] += 1
        logger.warning(
            "bus subscriber %s raised on message %s: %r", token, message_id, exc, exc_info=exc
        )

    def _persist_agent(self, agent_id: str) -> None:
        if self._store is not None:
            agent_type, groups = self._registry.agents[agent_id]
            self._store.put_agent(agent_id, agent_type, encode_json(list(groups)))


def _precedes(a: Entry, b: Entry) -> bool:
    return a[0] < b[0] or (a[0] == b[0] and a[1] < b[1])


def _router_died(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("bus router stopped: %r", task.exception(), exc_info=task.exception())


def check_bus_args(args: Mapping[str, Any]) -> None:
    """Validate ``AdvancedMessageBus.__init__`` arguments (its ``locals()``)."""
    for name in (
        "priority_queue_size",
        "broadcast_batch_size",
        "max_attempts",
        "receipt_history",
        "dead_letter_limit",
        "max_content_bytes",
    ):
        value = args[name]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigurationError(
                f"{name}={value!r} must be an int >= 1.", field=name, value=value
            )
    timeout = args["ack_timeout"]
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) or not timeout > 0:
        raise ConfigurationError(
            f"ack_timeout={timeout!r} must be a number of seconds > 0.",
            field="ack_timeout",
            value=timeout,
        )
    if args["mode"] not in ("memory", "durable"):
        raise ConfigurationError(
            f"mode={args['mode']!r} is not supported; use 'memory' or 'durable'.",
            field="mode",
            value=args["mode"],
        )
    for name in ("path", "database_url"):
        if args["mode"] == "memory" and args[name] is not None:
            raise ConfigurationError(
                f"{name}={args[name]!r} is only used with mode='durable'; drop it or set mode='durable'.",
                field=name,
                value=args[name],
            )
    if args["path"] is not None and args["database_url"] is not None:
        raise ConfigurationError(
            "path and database_url were both given; a durable bus keeps its state in one place. "
            "Fix: pass path= for SQLite or database_url= for PostgreSQL.",
            field="database_url",
            value=args["database_url"],
        )
    if not isinstance(args["name"], str) or not args["name"]:
        raise ConfigurationError(
            f"name={args['name']!r} must be a non-empty string (the bus's name in its database).",
            field="name",
            value=args["name"],
        )
    if not callable(args["clock"]):
        raise ConfigurationError(f"clock={args['clock']!r} must be callable.", field="clock")
