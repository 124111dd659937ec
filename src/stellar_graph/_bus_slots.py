"""Durable bus rows keyed by ``(bus name, slot)``: several processes, one database.

Several processes may drive one orchestra on one database (a SQLite data directory or a
PostgreSQL database), each with its own bus: a bus takes a **slot** of its name, the lowest one
no live process holds (a lock the operating system or the server drops when the process dies,
even by SIGKILL), and keeps its rows under ``(bus, slot)``. It **adopts** every other slot of its
name that no process holds, when it opens and then periodically
(:meth:`AdvancedMessageBus.adopt_orphans`): their messages (renumbered after its own), recipient
states, dead letters and registrations move into its own slot in one transaction, so what a
killed process had accepted is delivered by a live one.

Tables: ``stellar_bus_messages`` (one row per accepted message not yet finished),
``stellar_bus_rcpt`` (per-recipient state once it differs from "queued"),
``stellar_bus_dead_letters`` and ``stellar_bus_agents``. A finished message's rows are deleted,
so they hold only live traffic. The SQL here is written with ``%s`` placeholders and runs on
both backends (:mod:`stellar_graph._bus_sqlite`, :mod:`stellar_graph._bus_postgres`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

from stellar_graph._bus_store import Batch, Recovered, Row
from stellar_graph.errors import OrchestrationError

__all__ = ["MAX_SLOTS", "SlottedBackend"]

MAX_SLOTS = 64
"""Processes that can hold one bus name at once."""


class SlottedBackend(ABC):
    """The shared logic; a subclass brings the connection, transactions, locks and upserts."""

    fix: str
    off_loop: bool
    name: str
    slot: int
    where: str
    _db: Any
    """The driver's connection (``execute(sql, args)`` returns a cursor)."""
    _AGENT_ORDER = "ord"
    """The column that keeps the agents' registration order."""
    _UPSERT_RCPT: str
    _UPSERT_AGENT: str
    _INSERT_MESSAGE = (
        "INSERT INTO stellar_bus_messages (bus, slot, seq, message_id, meta, content) VALUES (%s, %s, %s, %s, %s, %s)"
    )

    # -- what a backend provides -----------------------------------------------------------------

    def _sql(self, text: str) -> str:
        """The statement in the driver's placeholder style."""
        return text

    def _run(self, sql: str, args: Sequence[Any] = ()) -> Any:
        return self._db.execute(self._sql(sql), args)

    @abstractmethod
    def _many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run ``sql`` once per row (nothing for no rows)."""

    @abstractmethod
    def _transaction(self) -> AbstractContextManager[None]:
        """One transaction (rolled back if the block raises)."""

    @abstractmethod
    def _try_lock(self, slot: int) -> bool:
        """Take ``slot`` of this name for this process, without waiting."""

    @abstractmethod
    def _unlock(self, slot: int) -> None:
        """Give ``slot`` back."""

    @abstractmethod
    def close(self) -> None:
        """Close the connection and give this bus's slot back."""

    # -- the bus's rows --------------------------------------------------------------------------

    def _claim_slot(self) -> int:
        for slot in range(MAX_SLOTS):
            if self._try_lock(slot):
                return slot
        raise OrchestrationError(
            f"{MAX_SLOTS} buses already hold message bus {self.name!r} in {self.where}. "
            f"Fix: close one of them, or give this one another name (the orchestra's thread id)."
        )

    def load(self, dead_letter_limit: int) -> Recovered:
        """Adopt what dead processes left, then read this slot."""
        claimed = self.claim_orphans()
        if claimed:
            (base,) = self._run(
                "SELECT COALESCE(max(seq), 0) FROM stellar_bus_messages WHERE bus = %s AND slot = %s",
                (self.name, self.slot),
            ).fetchone()
            self.adopt(claimed, base)
        key = (self.name, self.slot)
        out = Recovered()
        with self._transaction():
            self._drop_stray_receipts(self.slot)
            out.messages = self._messages(self.slot)
            for seq, recipient, status, attempts in self._receipts(self.slot):
                out.rcpt.setdefault(seq, {})[recipient] = (status, attempts)
            out.agents = self._agents(self.slot)
            kept = self._run(
                "SELECT id, body FROM stellar_bus_dead_letters WHERE bus = %s AND slot = %s "
                "ORDER BY id DESC LIMIT %s",
                (*key, dead_letter_limit),
            ).fetchall()[::-1]
            out.dead_letters = [body for _, body in kept]
            if kept:
                self._run(
                    "DELETE FROM stellar_bus_dead_letters WHERE bus = %s AND slot = %s AND id < %s",
                    (*key, kept[0][0]),
                )
        return out

    def write(self, batch: Batch) -> None:
        """Commit one batch in one transaction."""
        key = (self.name, self.slot)
        with self._transaction():
            if batch.rows:
                self._many(self._INSERT_MESSAGE, [(*key, *row) for row in batch.rows])
            if batch.updates:
                self._many(self._UPSERT_RCPT, [(*key, *update) for update in batch.updates])
            if batch.finished:
                self._many(
                    "DELETE FROM stellar_bus_messages WHERE bus = %s AND slot = %s AND seq = %s",
                    [(*key, seq) for seq in batch.finished],
                )
            if batch.finished_rcpt:
                self._many(
                    "DELETE FROM stellar_bus_rcpt WHERE bus = %s AND slot = %s AND seq = %s",
                    [(*key, seq) for seq in batch.finished_rcpt],
                )
            if batch.dead:
                self._many(
                    "INSERT INTO stellar_bus_dead_letters (bus, slot, body) VALUES (%s, %s, %s)",
                    [(*key, body) for body in batch.dead],
                )
            for agent_id, entry in batch.agents.items():
                if entry is None:
                    self._run(
                        "DELETE FROM stellar_bus_agents WHERE bus = %s AND slot = %s AND agent_id = %s",
                        (*key, agent_id),
                    )
                else:
                    self._run(self._UPSERT_AGENT, (*key, agent_id, *entry))

    # -- slots -----------------------------------------------------------------------------------

    def claim_orphans(self) -> list[tuple[int, int]]:
        """Lock every other slot of this name that no live process holds (its rows are frozen
        from then on); ``(slot, messages)`` for each."""
        union = " UNION ".join(
            f"SELECT slot FROM {table} WHERE bus = %s AND slot <> %s"
            for table in ("stellar_bus_messages", "stellar_bus_agents", "stellar_bus_dead_letters")
        )
        claimed = []
        for (other,) in sorted(self._run(union, (self.name, self.slot) * 3).fetchall()):
            if self._try_lock(other):
                (count,) = self._run(
                    "SELECT count(*) FROM stellar_bus_messages WHERE bus = %s AND slot = %s", (self.name, other)
                ).fetchone()
                claimed.append((other, count))
        return claimed

    def adopt(self, claimed: list[tuple[int, int]], base: int) -> Recovered:
        """Move the claimed slots' rows into ours, their messages numbered from ``base + 1`` in
        their order (the caller reserved those numbers), and release the slots; what moved."""
        name, mine = self.name, self.slot
        out = Recovered()
        try:
            with self._transaction():
                self._drop_stray_receipts(mine)
                offset = base
                known = {agent_id for agent_id, _, _ in self._agents(mine)}
                for other, _ in claimed:
                    self._drop_stray_receipts(other)
                    old = (name, other)
                    rows = self._messages(other)
                    renumber = {row[0]: offset + i for i, row in enumerate(rows, start=1)}
                    moved = [(renumber[seq], message_id, meta, content) for seq, message_id, meta, content in rows]
                    receipts = [(renumber[seq], who, status, tries) for seq, who, status, tries in self._receipts(other)]
                    agents = [a for a in self._agents(other) if a[0] not in known]
                    self._many(self._INSERT_MESSAGE, [(name, mine, *row) for row in moved])
                    self._many(
                        "INSERT INTO stellar_bus_rcpt (bus, slot, seq, recipient, status, attempts) "
                        "VALUES (%s, %s, %s, %s, %s, %s)",
                        [(name, mine, *receipt) for receipt in receipts],
                    )
                    self._many(
                        "INSERT INTO stellar_bus_agents (bus, slot, agent_id, agent_type, groups) "
                        "VALUES (%s, %s, %s, %s, %s)",
                        [(name, mine, *agent) for agent in agents],
                    )
                    out.dead_letters += [
                        body
                        for (body,) in self._run(
                            "SELECT body FROM stellar_bus_dead_letters WHERE bus = %s AND slot = %s ORDER BY id", old
                        ).fetchall()
                    ]
                    self._run("UPDATE stellar_bus_dead_letters SET slot = %s WHERE bus = %s AND slot = %s", (mine, *old))
                    for table in ("stellar_bus_messages", "stellar_bus_rcpt", "stellar_bus_agents"):
                        self._run(f"DELETE FROM {table} WHERE bus = %s AND slot = %s", old)
                    out.messages += moved
                    for seq, recipient, status, attempts in receipts:
                        out.rcpt.setdefault(seq, {})[recipient] = (status, attempts)
                    out.agents += agents
                    known.update(agent_id for agent_id, _, _ in agents)
                    offset += len(rows)
        finally:
            for other, _ in claimed:
                self._unlock(other)
        return out

    def _messages(self, slot: int) -> list[Row]:
        """A slot's messages, ``(seq, message_id, meta, content)`` in order."""
        return [
            (seq, message_id, meta, content)
            for seq, message_id, meta, content in self._run(
                "SELECT seq, message_id, meta, content FROM stellar_bus_messages "
                "WHERE bus = %s AND slot = %s ORDER BY seq",
                (self.name, slot),
            ).fetchall()
        ]

    def _receipts(self, slot: int) -> list[tuple[int, str, str, int]]:
        """A slot's recipient states, ``(seq, recipient, status, attempts)``."""
        return [
            (seq, recipient, status, attempts)
            for seq, recipient, status, attempts in self._run(
                "SELECT seq, recipient, status, attempts FROM stellar_bus_rcpt WHERE bus = %s AND slot = %s",
                (self.name, slot),
            ).fetchall()
        ]

    def _agents(self, slot: int) -> list[tuple[str, str | None, str]]:
        return [
            (agent_id, agent_type, groups)
            for agent_id, agent_type, groups in self._run(
                "SELECT agent_id, agent_type, groups FROM stellar_bus_agents "
                f"WHERE bus = %s AND slot = %s ORDER BY {self._AGENT_ORDER}",
                (self.name, slot),
            ).fetchall()
        ]

    def _drop_stray_receipts(self, slot: int) -> None:
        self._run(
            "DELETE FROM stellar_bus_rcpt WHERE bus = %s AND slot = %s AND seq NOT IN "
            "(SELECT seq FROM stellar_bus_messages WHERE bus = %s AND slot = %s)",
            (self.name, slot, self.name, slot),
        )
