"""The bridge between the facade's message bus and the agents' mailboxes in the graph state.

Messages sent on :attr:`StellarOrchestra.message_bus` wait in the bus: durable where the
checkpoints are (a ``bus.sqlite`` beside them, or the same PostgreSQL database, under the
orchestra's thread id), in memory when persistence is. Before each run the facade takes every agent's
waiting messages and hands them to the graph as ``deliver_messages``; intake puts them into the
checkpointed ``mailbox``; an agent sees its mail with its next task. Once the run that recorded
them has committed, messages that require an acknowledgement are acknowledged on the bus for
the agent — so they are delivered at least once (a crash before the commit redelivers them, and
the graph drops ids it already delivered). Messages without ``requires_ack`` are handed over at
most once, as the bus defines.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from stellar_graph.bus import AdvancedMessageBus
from stellar_graph.config import OrchestraConfig
from stellar_graph.persistence import database_url, resolved_backend, sqlite_paths

__all__ = ["MailBridge"]

logger = logging.getLogger(__name__)

ADOPT_EVERY = 1.0
"""Seconds between looks for messages a dead process's bus left (durable buses)."""


class MailBridge:
    """Owns the facade's bus: registration, taking mail before a run, acknowledging after it."""

    def __init__(self, bus: AdvancedMessageBus) -> None:
        self.bus = bus
        self._known: set[str] = set()
        self._adopter: asyncio.Task[None] | None = None
        self._looked_up: set[str] = set()

    def start(self) -> None:
        """With a durable bus, look every :data:`ADOPT_EVERY` seconds for messages the bus of a
        process that died had accepted, and deliver them from here (call on the running loop)."""
        if self.bus.shared and self._adopter is None:
            self._adopter = asyncio.get_running_loop().create_task(self._adopt_forever(), name="stellar-bus-adopter")

    async def _adopt_forever(self) -> None:
        while True:
            await asyncio.sleep(ADOPT_EVERY)
            try:
                adopted = await self.bus.adopt_orphans()
            except Exception as exc:  # the database may be away for a while: try again later
                logger.warning("message bus: looking for a dead process's messages failed: %s", exc)
                continue
            if adopted:
                logger.info("message bus: took over %d message(s) a stopped process had accepted", adopted)

    @classmethod
    def open(cls, config: OrchestraConfig, name: str) -> MailBridge:
        """The orchestra's bus (``name``: its thread id), durable where the checkpoints are."""
        backend = resolved_backend(config.persistence)
        if backend == "memory":
            return cls(AdvancedMessageBus.from_config(config.messaging))
        if backend == "postgres":
            url = database_url(config.persistence)
            return cls(AdvancedMessageBus.from_config(config.messaging, mode="durable", database_url=url, name=name))
        path = Path(sqlite_paths(config.persistence)[0]).with_name("bus.sqlite")
        path.parent.mkdir(parents=True, exist_ok=True)
        return cls(AdvancedMessageBus.from_config(config.messaging, mode="durable", path=str(path), name=name))

    def register(self, agents: Iterable[Mapping[str, Any]]) -> None:
        """Make agents addressable by id, by type (``type:AtlasAgent``) and by ``all-agents``."""
        for agent in agents:
            self.bus.register(agent["agent_id"], agent.get("agent_type"))
            self._known.add(agent["agent_id"])

    def take(self, agents: Mapping[str, Mapping[str, Any]], *, fresh: bool = True) -> list[dict[str, Any]] | None:
        """Every waiting message of these agents (id -> record), as ``{"agent_id", "message"}``
        items. Agents this bus has not seen (registered by another process on the same
        orchestra thread) are registered first.

        ``None`` when ``agents`` is not ``fresh`` (this process's view) and mail waits for an
        agent it does not list: another process registered it (its bus's messages were taken
        over); ask again with the latest state. Mail for an agent no state lists stays on the bus.
        """
        self.register(a for agent_id, a in agents.items() if agent_id not in self._known)
        if not fresh:
            stray = self.bus.recipients_waiting() - agents.keys() if self.bus.queue_depth else set()
            new, self._looked_up = stray - self._looked_up, stray
            if new:  # read the state once per agent it did not list
                return None
        return [
            {"agent_id": agent_id, "message": envelope.to_dict()}
            for agent_id in agents
            for envelope in self.bus.drain(agent_id)
        ]

    def settle(self, delivered: Iterable[Mapping[str, Any]]) -> None:
        """Acknowledge, for the agents, the messages a committed run recorded."""
        for item in delivered:
            if item["message"].get("requires_ack"):
                self.bus.ack(item["agent_id"], item["message"]["message_id"])

    async def close(self) -> None:
        """Stop looking for orphans; flush and close the bus."""
        if self._adopter is not None:
            self._adopter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._adopter
            self._adopter = None
        await self.bus.close()
