"""A durable bus's rows in the orchestra's PostgreSQL database (no local file).

Slots (:mod:`stellar_graph._bus_slots`) are session advisory locks, which the server drops with
the session when a process dies. A session the server dropped while the process lives (a restart,
a failover, an idle timeout) is reopened on the next write or orphan scan, and the slot taken
again; if another process took it meanwhile, it adopted the slot's messages and delivers them, and
this bus says so instead of writing on. The tables are created on first use, under the same setup lock
as LangGraph's migrations. Every commit is a round trip to the server, so it runs on the store's
thread, never on the event loop.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from stellar_graph._bus_slots import SlottedBackend
from stellar_graph._bus_store import Batch
from stellar_graph.errors import ConfigurationError, OrchestrationError
from stellar_graph.persistence import ADVISORY_CLASS, SETUP_LOCK, advisory_key

__all__ = ["PostgresBackend"]

_T = TypeVar("_T")

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


class PostgresBackend(SlottedBackend):
    """The bus's tables in PostgreSQL; a slot is a session advisory lock."""

    fix = "check that the database is reachable (persistence.database_url), then resend."
    off_loop = True  # every commit is a round trip to the server
    _UPSERT_RCPT = (
        "INSERT INTO stellar_bus_rcpt (bus, slot, seq, recipient, status, attempts) "
        "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (bus, slot, seq, recipient) "
        "DO UPDATE SET status = EXCLUDED.status, attempts = EXCLUDED.attempts"
    )
    _UPSERT_AGENT = (
        "INSERT INTO stellar_bus_agents (bus, slot, agent_id, agent_type, groups) "
        "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (bus, slot, agent_id) "
        "DO UPDATE SET agent_type = EXCLUDED.agent_type, groups = EXCLUDED.groups"
    )

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
        self.name, self._url = name, url
        self.where = "PostgreSQL"
        try:
            self._db = psycopg.connect(url, autocommit=True)
        except psycopg.Error as exc:
            raise OrchestrationError(f"Cannot open the message bus's database: {exc}.") from exc
        try:
            self._setup()
            self.slot = self._claim_slot()
        except BaseException:
            self._db.close()
            raise
        self.where = f"PostgreSQL (bus {name!r}, slot {self.slot})"

    def close(self) -> None:
        self._db.close()  # the server drops the slot's lock with the session

    def write(self, batch: Batch) -> None:
        self._reopened(lambda: SlottedBackend.write(self, batch))  # a dropped transaction left nothing

    def claim_orphans(self) -> list[tuple[int, int]]:
        return self._reopened(lambda: SlottedBackend.claim_orphans(self))

    def _reopened(self, op: Callable[[], _T]) -> _T:
        """``op()``; if the server had dropped the session, reconnect, take the slot back, run it again."""
        import psycopg

        try:
            return op()
        except psycopg.OperationalError:
            if not self._db.closed:
                raise
        self._db = psycopg.connect(self._url, autocommit=True)
        if not self._try_lock(self.slot):
            self._db.close()
            raise OrchestrationError(
                f"Message bus {self.name!r} lost its database session and another process took its slot "
                f"{self.slot} meanwhile, with the messages it had accepted (that process delivers them). "
                "Fix: restart this process; it takes a free slot."
            )
        return op()

    def _many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            with self._db.cursor() as cur:
                cur.executemany(sql, rows)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._db.transaction():
            yield

    def _setup(self) -> None:
        while not self._run("SELECT pg_try_advisory_lock(%s)", (SETUP_LOCK,)).fetchone()[0]:
            time.sleep(0.05)  # polled, like persistence's setup: a waiting statement is an open transaction
        try:
            for statement in _SCHEMA:
                self._run(statement)
        finally:
            self._run("SELECT pg_advisory_unlock(%s)", (SETUP_LOCK,))

    def _try_lock(self, slot: int) -> bool:
        row = self._run("SELECT pg_try_advisory_lock(%s, %s)", (ADVISORY_CLASS, self._key(slot))).fetchone()
        return bool(row and row[0])

    def _unlock(self, slot: int) -> None:
        self._run("SELECT pg_advisory_unlock(%s, %s)", (ADVISORY_CLASS, self._key(slot)))

    def _key(self, slot: int) -> int:
        return advisory_key(f"bus\x1f{self.name}\x1f{slot}")
