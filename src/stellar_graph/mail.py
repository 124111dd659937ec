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

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from stellar_graph.bus import AdvancedMessageBus
from stellar_graph.config import OrchestraConfig
from stellar_graph.persistence import database_url, resolved_backend, sqlite_paths

__all__ = ["MailBridge"]


class MailBridge:
    """Owns the facade's bus: registration, taking mail before a run, acknowledging after it."""

    def __init__(self, bus: AdvancedMessageBus) -> None:
        self.bus = bus
        self._known: set[str] = set()

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
        return cls(AdvancedMessageBus.from_config(config.messaging, mode="durable", path=str(path)))

    def register(self, agents: Iterable[Mapping[str, Any]]) -> None:
        """Make agents addressable by id, by type (``type:AtlasAgent``) and by ``all-agents``."""
        for agent in agents:
            self.bus.register(agent["agent_id"], agent.get("agent_type"))
            self._known.add(agent["agent_id"])

    def take(self, agents: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Every waiting message of these agents (id -> record), as ``{"agent_id", "message"}``
        items. Agents this bus has not seen (registered by another process on the same
        orchestra thread) are registered first."""
        self.register(a for agent_id, a in agents.items() if agent_id not in self._known)
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
        """Flush and close the bus."""
        await self.bus.close()
