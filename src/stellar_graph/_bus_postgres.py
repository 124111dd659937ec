"""A durable bus's rows in the orchestra's PostgreSQL database (no local file).

Several processes may drive one orchestra on one database, each with its own bus: a bus takes a
**slot** of its name, the lowest one no live process holds (a session advisory lock, dropped by
the server when the process dies, even by SIGKILL), and keeps its rows under ``(bus, slot)``.
It **adopts** every other slot of its name that no process holds, when it opens and then
periodically (:meth:`AdvancedMessageBus.adopt_orphans`): their messages, recipient states, dead
letters and registrations move into its own slot in one transaction, so what a killed process
had accepted is delivered by a live one, on this machine or another.

Tables (created on first use, under the same setup lock as LangGraph's migrations):
``stellar_bus_messages``, ``stellar_bus_rcpt``, ``stellar_bus_dead_letters``,
``stellar_bus_agents``.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from stellar_graph._bus_store import Batch, Recovered
from stellar_graph.errors import ConfigurationError, OrchestrationError

__all__ = ["PostgresBackend"]

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS stellar_bus_messages (
        bus TEXT NOT NULL, slot INTEGER NOT NULL, seq BIGINT NOT NULL, message_id TEXT NOT NULL,
        meta TEXT NOT NULL, content TEXT NOT NULL, PRIMARY KEY (bus, slot, seq))""",
    """CREATE TABLE IF NOT EXISTS stellar_bus_rcpt (
        bus TEXT NOT NULL, slot INTEGER NOT NULL, seq BIGINT NOT NULL, recipient TEXT NOT NULL,
        status TEXT NOT NULL, attempts INTEGER NOT NULL, PRIMARY KEY (bus, slot, seq, recipient))""",
    """CREATE TABLE IF NOT EXISTS stellar_bus_dead_letters (
        id BIGSERIAL PRIMARY KEY, bus TEXT NOT NULL, slot INTEGER NOT NULL, body TEXT NOT NULL)""",
    """CREATE INDEX IF NOT EXISTS stellar_bus_dead_letters_slot
        ON stellar_bus_dead_letters (bus, slot, id)""",
    """CREATE TABLE IF NOT EXISTS stellar_bus_agents (
        bus TEXT NOT NULL, slot INTEGER NOT NULL, agent_id TEXT NOT NULL, agent_type TEXT,
        groups TEXT NOT NULL, ord BIGSERIAL, PRIMARY KEY (bus, slot, agent_id))""",
)
_TABLES = ("stellar_bus_messages", "stellar_bus_agents", "stellar_bus_dead_letters")
_CLASS = 0x5347
"""The advisory-lock namespace of stellar_graph (shared with ``runtime.lease``)."""
_SETUP_LOCK = 0x53470001
"""Held while creating tables (``persistence`` holds it for LangGraph's migrations)."""

MAX_SLOTS = 64
"""Processes that can hold one bus name at once."""


class PostgresBackend:
    """The four tables in PostgreSQL, rows keyed by ``(bus name, slot)``."""

    fix = "check that the database is reachable (persistence.database_url), then resend."
    off_loop = True  # every commit is a round trip to the server

    def __init__(self, url: str, name: str) -> None:
        if not url:
            raise ConfigurationError(
                "mode='durable' needs a path or a database_url, got neither. Fix: pass "
                "path='bus.sqlite' or database_url='postgresql://...' (or use mode='memory').",
                field="database_url",
                value=url,
            )
        try:
            import psycopg
        except ImportError:
            raise ConfigurationError(
                "A PostgreSQL message bus needs the `postgres` extra: pip install 'stellar-graph[postgres]'.",
                field="database_url",
            ) from None
        self.name = name
        try:
            self._db: Any = psycopg.connect(url, autocommit=True)
        except psycopg.Error as exc:
            raise OrchestrationError(f"Cannot open the message bus's database: {exc}.") from exc
        try:
            self._setup()
            self.slot = self._claim_slot()
        except BaseException:
            self._db.close()
            raise
        self.where = f"PostgreSQL (bus {name!r}, slot {self.slot})"

    def load(self, dead_letter_limit: int) -> Recovered:
        claimed = self.claim_orphans()
        if claimed:
            base = self._db.execute(
                "SELECT COALESCE(max(seq), 0) FROM stellar_bus_messages WHERE bus = %s AND slot = %s",
                (self.name, self.slot),
            ).fetchone()[0]
            self.adopt(claimed, base)
        db, key = self._db, (self.name, self.slot)
        out = Recovered()
        with db.transaction():
            db.execute(
                "DELETE FROM stellar_bus_rcpt r WHERE bus = %s AND slot = %s AND NOT EXISTS ("
                "SELECT 1 FROM stellar_bus_messages m WHERE m.bus = r.bus AND m.slot = r.slot AND m.seq = r.seq)",
                key,
            )
            out.messages = db.execute(
                "SELECT seq, message_id, meta, content FROM stellar_bus_messages "
                "WHERE bus = %s AND slot = %s ORDER BY seq",
                key,
            ).fetchall()
            for seq, recipient, status, attempts in db.execute(
                "SELECT seq, recipient, status, attempts FROM stellar_bus_rcpt WHERE bus = %s AND slot = %s", key
            ):
                out.rcpt.setdefault(seq, {})[recipient] = (status, attempts)
            out.agents = db.execute(
                "SELECT agent_id, agent_type, groups FROM stellar_bus_agents "
                "WHERE bus = %s AND slot = %s ORDER BY ord",
                key,
            ).fetchall()
            kept = db.execute(
                "SELECT id, body FROM stellar_bus_dead_letters WHERE bus = %s AND slot = %s "
                "ORDER BY id DESC LIMIT %s",
                (*key, dead_letter_limit),
            ).fetchall()[::-1]
            out.dead_letters = [body for _, body in kept]
            if kept:
                db.execute(
                    "DELETE FROM stellar_bus_dead_letters WHERE bus = %s AND slot = %s AND id < %s",
                    (*key, kept[0][0]),
                )
        return out

    def write(self, batch: Batch) -> None:
        key = (self.name, self.slot)
        with self._db.transaction(), self._db.cursor() as cur:
            if batch.rows:
                cur.executemany(
                    "INSERT INTO stellar_bus_messages (bus, slot, seq, message_id, meta, content) "
                    "VALUES (%s, %s, %s, %s, %s, %s)",
                    [(*key, *row) for row in batch.rows],
                )
            if batch.updates:
                cur.executemany(
                    "INSERT INTO stellar_bus_rcpt VALUES (%s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT (bus, slot, seq, recipient) "
                    "DO UPDATE SET status = EXCLUDED.status, attempts = EXCLUDED.attempts",
                    [(*key, *update) for update in batch.updates],
                )
            if batch.finished:
                cur.execute(
                    "DELETE FROM stellar_bus_messages WHERE bus = %s AND slot = %s AND seq = ANY(%s)",
                    (*key, batch.finished),
                )
            if batch.finished_rcpt:
                cur.execute(
                    "DELETE FROM stellar_bus_rcpt WHERE bus = %s AND slot = %s AND seq = ANY(%s)",
                    (*key, batch.finished_rcpt),
                )
            if batch.dead:
                cur.executemany(
                    "INSERT INTO stellar_bus_dead_letters (bus, slot, body) VALUES (%s, %s, %s)",
                    [(*key, body) for body in batch.dead],
                )
            for agent_id, entry in batch.agents.items():
                if entry is None:
                    cur.execute(
                        "DELETE FROM stellar_bus_agents WHERE bus = %s AND slot = %s AND agent_id = %s",
                        (*key, agent_id),
                    )
                else:
                    cur.execute(
                        "INSERT INTO stellar_bus_agents (bus, slot, agent_id, agent_type, groups) "
                        "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (bus, slot, agent_id) "
                        "DO UPDATE SET agent_type = EXCLUDED.agent_type, groups = EXCLUDED.groups",
                        (*key, agent_id, *entry),
                    )

    def close(self) -> None:
        self._db.close()  # the server drops the slot's lock with the session

    # -- slots ---------------------------------------------------------------------------------

    def _setup(self) -> None:
        while not self._db.execute("SELECT pg_try_advisory_lock(%s)", (_SETUP_LOCK,)).fetchone()[0]:
            time.sleep(0.05)  # polled, like persistence's setup: a waiting statement is an open transaction
        try:
            for statement in _SCHEMA:
                self._db.execute(statement)
        finally:
            self._db.execute("SELECT pg_advisory_unlock(%s)", (_SETUP_LOCK,))

    def _claim_slot(self) -> int:
        for slot in range(MAX_SLOTS):
            if self._try_lock(slot):
                return slot
        raise OrchestrationError(
            f"{MAX_SLOTS} processes already hold message bus {self.name!r} in this database. "
            f"Fix: stop one of them, or give this orchestra its own thread id."
        )

    def _orphans(self) -> list[int]:
        union = " UNION ".join(f"SELECT slot FROM {table} WHERE bus = %s AND slot <> %s" for table in _TABLES)
        rows = self._db.execute(union, (self.name, self.slot) * len(_TABLES)).fetchall()
        return sorted(slot for (slot,) in rows)

    def claim_orphans(self) -> list[tuple[int, int]]:
        """Lock every other slot of this name that no live session holds (its rows are frozen
        from then on); ``(slot, messages)`` for each."""
        claimed = []
        for other in self._orphans():
            if self._try_lock(other):
                (count,) = self._db.execute(
                    "SELECT count(*) FROM stellar_bus_messages WHERE bus = %s AND slot = %s", (self.name, other)
                ).fetchone()
                claimed.append((other, count))
        return claimed

    def adopt(self, claimed: list[tuple[int, int]], base: int) -> Recovered:
        """Move the claimed slots' rows into ours, their messages numbered from ``base + 1`` in
        their order (the caller reserved those numbers), and release the slots; what moved."""
        db, name, mine = self._db, self.name, self.slot
        out = Recovered()
        try:
            with db.transaction():
                offset = base
                for other, count in claimed:
                    renumbered = (
                        "(SELECT seq, %s + row_number() OVER (ORDER BY seq) AS new_seq "
                        "FROM stellar_bus_messages WHERE bus = %s AND slot = %s) n"
                    )
                    args = (offset, name, other)
                    moved = db.execute(
                        f"UPDATE stellar_bus_rcpt r SET slot = %s, seq = n.new_seq FROM {renumbered} "
                        "WHERE r.bus = %s AND r.slot = %s AND r.seq = n.seq "
                        "RETURNING r.seq, r.recipient, r.status, r.attempts",
                        (mine, *args, name, other),
                    ).fetchall()
                    for seq, recipient, status, attempts in moved:
                        out.rcpt.setdefault(seq, {})[recipient] = (status, attempts)
                    db.execute("DELETE FROM stellar_bus_rcpt WHERE bus = %s AND slot = %s", (name, other))
                    out.messages += db.execute(
                        f"UPDATE stellar_bus_messages m SET slot = %s, seq = n.new_seq FROM {renumbered} "
                        "WHERE m.bus = %s AND m.slot = %s AND m.seq = n.seq "
                        "RETURNING m.seq, m.message_id, m.meta, m.content",
                        (mine, *args, name, other),
                    ).fetchall()
                    out.dead_letters += [
                        body
                        for (body,) in db.execute(
                            "UPDATE stellar_bus_dead_letters SET slot = %s WHERE bus = %s AND slot = %s RETURNING body",
                            (mine, name, other),
                        )
                    ]
                    out.agents += db.execute(
                        "INSERT INTO stellar_bus_agents (bus, slot, agent_id, agent_type, groups) "
                        "SELECT bus, %s, agent_id, agent_type, groups FROM stellar_bus_agents "
                        "WHERE bus = %s AND slot = %s ORDER BY ord ON CONFLICT (bus, slot, agent_id) DO NOTHING "
                        "RETURNING agent_id, agent_type, groups",
                        (mine, name, other),
                    ).fetchall()
                    db.execute("DELETE FROM stellar_bus_agents WHERE bus = %s AND slot = %s", (name, other))
                    offset += count
        finally:
            for other, _ in claimed:
                self._unlock(other)
        out.messages.sort()
        return out

    def _try_lock(self, slot: int) -> bool:
        row = self._db.execute("SELECT pg_try_advisory_lock(%s, %s)", (_CLASS, self._key(slot))).fetchone()
        return bool(row and row[0])

    def _unlock(self, slot: int) -> None:
        self._db.execute("SELECT pg_advisory_unlock(%s, %s)", (_CLASS, self._key(slot)))

    def _key(self, slot: int) -> int:
        digest = hashlib.sha256(f"bus\x1f{self.name}\x1f{slot}".encode()).digest()
        return int.from_bytes(digest[:4], "big", signed=True)
