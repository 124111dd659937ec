"""`AdvancedMessageBus`: a priority message bus for agents (pure asyncio, stdlib sqlite3).

Path of a message::

    send_priority_message ──> priority queue ──router──> per-agent inboxes ──> receive / drain
       (validate, resolve,      heap of (-priority,        heaps, same keys       (TTL check,
        admit or shed)          seq, envelope)                                      receipts, ack)

* **Order**: highest ``priority_level`` first, FIFO within a priority (a sequence number breaks
  ties, so payloads are never compared), in the queue and in every inbox.
* **Bound**: ``priority_queue_size`` bounds the messages accepted but not yet received by all
  their recipients. When full, a more urgent message sheds the lowest-priority, newest queued one
  (a dead letter with reason ``"shed"``); a message no more urgent than everything queued is
  refused with :class:`QueueFullError` and nothing queued is lost.
* **TTL**: an expired message is dropped when dequeued (or when room is needed), never delivered.
* **QoS**: ``requires_ack`` messages are redelivered after ``ack_timeout`` until acked, at most
  ``max_attempts`` deliveries, then dead-lettered (at-least-once).
* **Durability**: :meth:`AdvancedMessageBus.snapshot` / :meth:`~AdvancedMessageBus.restore`
  give JSON-able state for a checkpoint; ``mode="durable"`` also commits every accepted message
  before the send returns (group commits on a thread of the bus's own), to a SQLite file
  (``path``) or a PostgreSQL database (``database_url``), and a new bus on the same path or name
  redelivers everything not finished.

Example:
    >>> bus = AdvancedMessageBus()
    >>> bus.register("atlas-001", agent_type="AtlasAgent", groups=["research"])
    >>> mid = await bus.send_priority_message({"sender": "stellar-orchestra",
    ...     "recipients": ["all-agents"], "message_type": "emergency", "priority_level": 10,
    ...     "content": {"alert": "disk full"}})
    >>> (await bus.receive("atlas-001")).content
    {'alert': 'disk full'}
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from heapq import heappush
from typing import TYPE_CHECKING, Any, Literal

from stellar_graph import _bus_state
from stellar_graph._bus_core import (
    _FINAL,
    ACKED,
    DELIVERED,
    QUEUED,
    BusCore,
    Handler,
    _Inbox,
    check_bus_args,
)
from stellar_graph._bus_message import (
    DEFAULT_MAX_CONTENT_BYTES,
    PROTOCOL_FIELDS,
    Envelope,
    Message,
    parse_message,
)
from stellar_graph._bus_registry import ALL_AGENTS
from stellar_graph._bus_sqlite import SqliteBackend
from stellar_graph._bus_store import Backend, DurableStore, Recovered
from stellar_graph.errors import (
    InvalidInputError,
    OrchestrationError,
    QueueFullError,
    UnknownAgentError,
    UnknownMessageError,
    UnknownRecipientError,
)

if TYPE_CHECKING:
    from stellar_graph.config import MessagingConfig

__all__ = [
    "ALL_AGENTS",
    "PROTOCOL_FIELDS",
    "AdvancedMessageBus",
    "Envelope",
    "Message",
    "QueueFullError",
    "UnknownMessageError",
    "UnknownRecipientError",
]


class AdvancedMessageBus(BusCore):
    """A bounded priority bus with registry, broadcasts, receipts, acks and persistence.

    Args:
        priority_queue_size: most messages accepted but not yet received by every recipient.
        broadcast_batch_size: recipients the router hands a message to before yielding the loop.
        mode: ``"memory"`` (default, ephemeral) or ``"durable"`` (SQLite at ``path``, or
            PostgreSQL at ``database_url``).
        path: the SQLite file for ``mode="durable"``.
        database_url: a PostgreSQL URL for ``mode="durable"`` instead of ``path`` (no local file).
        name: the bus's name in that file or database (the orchestra uses its thread id); buses
            of one name in several processes each take a slot (see :mod:`stellar_graph._bus_slots`).
        ack_timeout: seconds (of ``clock``) before an unacked delivery is redelivered.
        max_attempts: deliveries of a ``requires_ack`` message before it is dead-lettered.
        clock: monotonic seconds for TTLs and ack timeouts (inject a fake one in tests).
        max_content_bytes: largest content, measured as its JSON encoding in UTF-8.
        receipt_history: finished messages whose receipts are kept (oldest forgotten first).
        dead_letter_limit: dead-letter records kept, with their content (oldest dropped first).
        fsync: SQLite durable mode only; fsync every commit (survives power loss, ~ms per
            commit).

    Raises:
        ConfigurationError: a bad argument.
        OrchestrationError: the durable file is owned by another bus, or the file or the
            database cannot be opened.
    """

    def __init__(
        self,
        *,
        priority_queue_size: int = 1000,
        broadcast_batch_size: int = 50,
        mode: Literal["memory", "durable"] = "memory",
        path: str | None = None,
        database_url: str | None = None,
        name: str = "default",
        ack_timeout: float = 30.0,
        max_attempts: int = 3,
        clock: Callable[[], float] = time.monotonic,
        max_content_bytes: int = DEFAULT_MAX_CONTENT_BYTES,
        receipt_history: int = 10_000,
        dead_letter_limit: int = 1_000,
        fsync: bool = False,
    ) -> None:
        check_bus_args(locals())
        super().__init__(
            capacity=priority_queue_size,
            batch=broadcast_batch_size,
            ack_timeout=ack_timeout,
            max_attempts=max_attempts,
            clock=clock,
            max_bytes=max_content_bytes,
            history_limit=receipt_history,
            dead_letter_limit=dead_letter_limit,
        )
        self.mode = mode
        self._closed = False
        if mode == "durable":
            self._store = DurableStore(_backend(path, database_url, name, fsync=fsync), self._on_commit)
            self._recover(self._store.load(dead_letter_limit))

    @classmethod
    def from_config(cls, config: MessagingConfig, **options: Any) -> AdvancedMessageBus:
        """Build a bus from ``OrchestraConfig.messaging`` (plus any keyword option above)."""
        return cls(
            priority_queue_size=config.priority_queue_size,
            broadcast_batch_size=config.broadcast_batch_size,
            **options,
        )

    # -- registry -------------------------------------------------------------------------

    def register(
        self, agent_id: str, agent_type: str | None = None, groups: Iterable[str] = ()
    ) -> None:
        """Register a recipient; registering an id again with the same type merges its groups.

        Raises:
            InvalidInputError: a bad or reserved name.
            DuplicateAgentError: the id is registered with another agent type.
        """
        self._registry.register(agent_id, agent_type, groups)
        self._inboxes.setdefault(agent_id, _Inbox())
        self._persist_agent(agent_id)

    def unregister(self, agent_id: str) -> None:
        """Remove a recipient; its queued and unacked messages become dead letters.

        Raises:
            UnknownAgentError: the id is not registered.
        """
        self._registry.unregister(agent_id)
        box = self._inboxes.pop(agent_id, None)
        for waiter in box.waiters if box else ():
            if not waiter.done():
                waiter.set_exception(UnknownAgentError(agent_id, list(self._registry.agents)))
        for env in list(self._live.values()):
            state = env._status.get(agent_id)
            if state == QUEUED or (state == DELIVERED and env.requires_ack):
                self._dead_letter(env, [agent_id], "recipient unregistered")
        if self._store is not None:
            self._store.drop_agent(agent_id)

    def add_to_group(self, agent_id: str, group: str) -> None:
        """Add a registered agent to a group (created on first use)."""
        self._registry.add_to_group(agent_id, group)
        self._persist_agent(agent_id)

    def remove_from_group(self, agent_id: str, group: str) -> None:
        """Take an agent out of a group; an emptied group stops resolving."""
        self._registry.remove_from_group(agent_id, group)
        self._persist_agent(agent_id)

    def agents(self) -> list[dict[str, Any]]:
        """Registered agents: ``[{"agent_id", "agent_type", "groups"}]`` in registration order."""
        return self._registry.to_list()

    def resolve(self, recipients: Iterable[str]) -> tuple[str, ...]:
        """Resolve recipient names (ids, ``all-agents``, types, groups) to agent ids.

        Raises:
            UnknownRecipientError: a name that matches nothing registered.
            InvalidInputError: an ambiguous bare name.
        """
        return self._registry.resolve(list(recipients))

    # -- sending --------------------------------------------------------------------------

    async def send_priority_message(self, message: Mapping[str, Any] | Message) -> str:
        """Validate, address and enqueue one message.

        Args:
            message: a :class:`Message` or a dict of its fields (``sender``, ``recipients``,
                ``message_type`` required; ``priority_level`` 1..10, default 5).

        Returns:
            The message id.

        Raises:
            InvalidInputError: a bad field, content or protocol payload, or a duplicate id.
            UnknownRecipientError: a recipient that resolves to no registered agent.
            QueueFullError: the queue is full of messages at least as urgent.
            OrchestrationError: durable mode could not commit the message.
        """
        if self._closed:
            raise OrchestrationError(
                "This AdvancedMessageBus is closed; nothing was sent. Fix: create a new bus "
                "(a durable one recovers its messages from the same path)."
            )
        env, content_json = parse_message(message, self._max_bytes)
        env.recipients = self._registry.resolve(env.targets)
        if env.message_id in self._live:
            raise InvalidInputError(
                f"Message id {env.message_id!r} is already queued or awaiting acks. "
                f"Fix: omit message_id to get a fresh uuid4, or use a new id.",
                errors=[{"field": "message_id", "value": env.message_id, "message": "duplicate"}],
            )
        self._admit(env)
        self._accept(env)
        if self._store is None:
            heappush(self._heap, (-env.priority_level, env._seq, env))
            self._wake_router()
            return env.message_id
        meta = _bus_state.meta_json(env)
        await asyncio.shield(self._store.add(env, meta, content_json))
        return env.message_id

    async def send(
        self,
        sender: str,
        recipients: str | list[str],
        message_type: str,
        content: Any = None,
        *,
        priority_level: int = 5,
        **fields: Any,
    ) -> str:
        """Shorthand for :meth:`send_priority_message` with keyword fields."""
        data: dict[str, Any] = {
            "sender": sender,
            "recipients": [recipients] if isinstance(recipients, str) else recipients,
            "message_type": message_type,
            "content": {} if content is None else content,
            "priority_level": priority_level,
            **fields,
        }
        return await self.send_priority_message(data)

    # -- receiving ------------------------------------------------------------------------

    # The seed API takes a timeout (None waits forever) and returns None when it passes.
    async def receive(self, agent_id: str, timeout: float | None = None) -> Envelope | None:  # noqa: ASYNC109
        """Wait for the agent's most urgent message.

        Args:
            agent_id: a registered agent.
            timeout: seconds to wait; ``None`` waits forever.

        Returns:
            The message, or ``None`` when ``timeout`` passed first.

        Raises:
            UnknownAgentError: the agent is not registered (or was unregistered while waiting).
        """
        box = self._inbox(agent_id)
        if self._deadlines and self._deadlines[0][0] <= self._clock():
            self._poll_timeouts()
        env = self._take(box, agent_id)
        if env is not None:
            return env
        if self._heap:
            self._wake_router()
        deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
        return await self._wait(box, agent_id, deadline)

    def drain(self, agent_id: str, max_n: int | None = None) -> list[Envelope]:
        """Take up to ``max_n`` waiting messages (all if ``None``) without waiting.

        Anything still in the priority queue is routed first, so the result covers every message
        accepted so far.

        Raises:
            UnknownAgentError: the agent is not registered.
        """
        box = self._inbox(agent_id)
        if self._heap:
            self._route(sys.maxsize, whole=True)
        self._poll_timeouts()
        out: list[Envelope] = []
        while max_n is None or len(out) < max_n:
            env = self._take(box, agent_id)
            if env is None:
                break
            out.append(env)
        return out

    # -- acknowledgements and timeouts ----------------------------------------------------

    def ack(self, agent_id: str, message_id: str) -> bool:
        """Acknowledge a delivered ``requires_ack`` message.

        Returns:
            True if this call recorded the ack; False for a duplicate or late ack, an ack before
            delivery, or a message that does not require acks.

        Raises:
            UnknownMessageError: the bus does not know the message (or forgot its receipts).
            InvalidInputError: the agent is not a recipient of the message.
        """
        env = self._live.get(message_id)
        status = env._status if env is not None else self._history.get(message_id)
        if status is None:
            raise UnknownMessageError(message_id)
        state = status.get(agent_id)
        if state is None:
            raise InvalidInputError(
                f"Agent {agent_id!r} is not a recipient of message {message_id!r} "
                f"(recipients: {sorted(status)[:20]!r}). Fix: ack with the receiving agent's id.",
                errors=[{"field": "agent_id", "value": agent_id, "message": "not a recipient"}],
            )
        key = (agent_id, message_id)
        if env is None or not env.requires_ack or state in _FINAL or key not in self._attempts:
            return False
        self._n["acked"] += 1
        self._set(env, agent_id, ACKED)
        self._attempts.pop(key, None)
        return True

    def poll_timeouts(self) -> int:
        """Redeliver or dead-letter every delivery whose ack is overdue by ``clock``.

        The bus calls this itself (a loop timer, and on every receive/drain); call it after
        moving a fake clock forward.

        Returns:
            How many deliveries timed out.
        """
        return self._poll_timeouts()

    # -- subscriptions --------------------------------------------------------------------

    def subscribe(
        self,
        handler: Handler,
        *,
        message_types: Iterable[str] | None = None,
        senders: Iterable[str] | None = None,
    ) -> str:
        """Call ``handler(envelope)`` for every routed message matching the filters.

        Handlers may be sync or async (coroutines run as tasks). A handler that raises is
        logged at WARNING and counted in ``handler_errors``; delivery goes on.

        Returns:
            A token for :meth:`unsubscribe`.

        Raises:
            InvalidInputError: ``handler`` is not callable.
        """
        if not callable(handler):
            raise InvalidInputError(
                f"subscribe() needs a callable handler, got {handler!r}.",
                errors=[{"field": "handler", "value": handler, "message": "not callable"}],
            )
        token = f"sub-{next(self._ids)}"
        self._subs[token] = (handler, _as_set(message_types), _as_set(senders))
        return token

    def unsubscribe(self, token: str) -> bool:
        """Stop a subscription; returns False if the token was not subscribed."""
        return self._subs.pop(token, None) is not None

    # -- inspection -----------------------------------------------------------------------

    @property
    def queue_depth(self) -> int:
        """Messages accepted and not yet received by every recipient."""
        return self._depth

    def recipients_waiting(self) -> set[str]:
        """The agents with at least one message waiting to be received."""
        return {
            agent_id
            for bucket in self._buckets
            for env in bucket.values()
            for agent_id, state in env._status.items()
            if state == QUEUED
        }

    def receipts(self, message_id: str) -> dict[str, str]:
        """Per-recipient state: ``queued``, ``delivered``, ``acked``, ``expired`` or ``dead-letter``.

        Raises:
            UnknownMessageError: never sent, or finished longer ago than ``receipt_history``.
        """
        env = self._live.get(message_id)
        status = env._status if env is not None else self._history.get(message_id)
        if status is None:
            raise UnknownMessageError(
                message_id,
                hint=f"Receipts are kept for the last {self._history_limit} finished messages "
                f"(receipt_history).",
            )
        return dict(status)

    def metrics(self) -> dict[str, int]:
        """Counters since the bus (or its snapshot's origin) started, plus current depths.

        ``sent``, ``shed`` and ``refused`` count messages; ``delivered``, ``acked``,
        ``redelivered``, ``expired`` and ``dead_lettered`` count per-recipient events.
        """
        live = self._live
        in_flight = sum(
            1 for (r, mid) in self._attempts if mid in live and live[mid]._status[r] == DELIVERED
        )
        return {**self._n, "queue_depth": self._depth, "in_flight": in_flight}

    def dead_letters(self) -> list[dict[str, Any]]:
        """Dead-letter records, oldest first: ``{message, recipients, reason, at}``."""
        return list(self._dead)

    # -- durability -----------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Pending, in-flight and dead-letter state plus registry and counters, as JSON data."""
        return _bus_state.snapshot(self)

    def restore(self, state: Mapping[str, Any]) -> None:
        """Load a :meth:`snapshot` into this (empty) bus; in-flight deliveries are requeued.

        Raises:
            ConfigurationError: an unknown snapshot format, or the bus already holds messages.
        """
        _bus_state.restore(self, state)

    @property
    def shared(self) -> bool:
        """The state is in a file or database that buses of the same name in other processes share."""
        return self.mode == "durable"

    async def adopt_orphans(self) -> int:
        """Take over the messages of buses of this name whose process died (every slot of the
        file or database no live process holds); they are delivered from this bus. Returns how
        many.

        A bus does this when it opens; the orchestra also calls it every second, so a live
        process delivers what a killed one had accepted. A no-op in memory mode.
        """
        if self._store is None or self._closed:
            return 0
        found = await self._store.adopt(self._reserve)
        if found is None:
            return 0
        before = self._n["recovered"]
        self._recover(found)
        self._wake_router()
        return self._n["recovered"] - before

    def _reserve(self, n: int) -> int:
        base, self._seq = self._seq, self._seq + n
        return base

    def _recover(self, found: Recovered) -> None:
        _bus_state.recover(self, found)
        for agent_id in self._registry.agents:
            self._inboxes.setdefault(agent_id, _Inbox())

    async def flush(self) -> None:
        """Commit pending durable writes (acks, deliveries) now; a no-op in memory mode."""
        if self._store is not None:
            await self._store.committed()

    async def close(self) -> None:
        """Stop the router and timers, flush and close the durable store (idempotent)."""
        self._closed = True
        if self._router is not None:
            self._router.cancel()
            self._router = None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for task in list(self._tasks):
            task.cancel()
        if self._store is not None:
            store, self._store = self._store, None
            await store.aclose()

    async def __aenter__(self) -> AdvancedMessageBus:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _backend(path: str | None, database_url: str | None, name: str, *, fsync: bool) -> Backend:
    if database_url is not None:
        from stellar_graph._bus_postgres import PostgresBackend

        return PostgresBackend(database_url, name)
    return SqliteBackend(path or "", name=name, fsync=fsync)


def _as_set(values: Iterable[str] | None) -> frozenset[str] | None:
    if values is None:
        return None
    return frozenset([values] if isinstance(values, str) else values)
