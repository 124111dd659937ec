"""A durable bus's rows in a SQLite file (the default: ``bus.sqlite`` beside the checkpoints).

WAL mode with ``synchronous=NORMAL`` by default: a committed message survives the process being
killed (the WAL write happens before ``COMMIT`` returns) but not a power cut; ``fsync=True``
switches to ``synchronous=FULL`` for that (and commits on the store's thread, since an fsync
waits for the disk).

Several processes on one data directory share the file: a slot
(:mod:`stellar_graph._bus_slots`) is an ``flock`` on ``<path>.lock`` (slot 0) or
``<path>.lock.<n>``, dropped by the OS when its owner dies, even by SIGKILL. A file written by
an earlier version (one bus, tables without a slot) is migrated into slot 0 when first opened.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

from stellar_graph._bus_slots import SlottedBackend
from stellar_graph.errors import ConfigurationError, OrchestrationError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows has no flock; the lock is then advisory only
    fcntl = None  # type: ignore[assignment]

__all__ = ["SqliteBackend"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS stellar_bus_messages (
    bus TEXT NOT NULL, slot INTEGER NOT NULL, seq INTEGER NOT NULL, message_id TEXT NOT NULL,
    meta TEXT NOT NULL, content TEXT NOT NULL, PRIMARY KEY (bus, slot, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stellar_bus_rcpt (
    bus TEXT NOT NULL, slot INTEGER NOT NULL, seq INTEGER NOT NULL, recipient TEXT NOT NULL,
    status TEXT NOT NULL, attempts INTEGER NOT NULL, PRIMARY KEY (bus, slot, seq, recipient)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS stellar_bus_dead_letters (
    id INTEGER PRIMARY KEY, bus TEXT NOT NULL, slot INTEGER NOT NULL, body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS stellar_bus_dead_letters_slot ON stellar_bus_dead_letters (bus, slot, id);
CREATE TABLE IF NOT EXISTS stellar_bus_agents (
    bus TEXT NOT NULL, slot INTEGER NOT NULL, agent_id TEXT NOT NULL, agent_type TEXT,
    groups TEXT NOT NULL, PRIMARY KEY (bus, slot, agent_id)
);
"""

_V1_MIGRATION = (
    "INSERT INTO stellar_bus_messages SELECT ?, 0, seq, message_id, meta, content FROM messages",
    "INSERT INTO stellar_bus_rcpt SELECT ?, 0, seq, recipient, status, attempts FROM rcpt",
    "INSERT INTO stellar_bus_dead_letters (bus, slot, body) SELECT ?, 0, body FROM dead_letters ORDER BY id",
    "INSERT INTO stellar_bus_agents (bus, slot, agent_id, agent_type, groups) "
    "SELECT ?, 0, agent_id, agent_type, groups FROM agents ORDER BY rowid",
)


class SqliteBackend(SlottedBackend):
    """The bus's tables in one SQLite file; a slot is an ``flock`` on a lock file beside it."""

    fix = "check disk space and permissions, then resend."
    _AGENT_ORDER = "rowid"
    _UPSERT_RCPT = (
        "INSERT OR REPLACE INTO stellar_bus_rcpt (bus, slot, seq, recipient, status, attempts) "
        "VALUES (?, ?, ?, ?, ?, ?)"
    )
    _UPSERT_AGENT = (
        "INSERT OR REPLACE INTO stellar_bus_agents (bus, slot, agent_id, agent_type, groups) VALUES (?, ?, ?, ?, ?)"
    )

    def __init__(self, path: str, *, name: str = "default", fsync: bool = False) -> None:
        if not path or path == ":memory:":
            raise ConfigurationError(
                f"mode='durable' needs a file path, got path={path!r}. Fix: pass "
                f"path='bus.sqlite' (or use mode='memory').",
                field="path",
                value=path,
            )
        self.path, self.name = path, name
        self.where = repr(path)
        self.off_loop = fsync  # an fsync waits for the disk: not on the loop
        self._locks: dict[int, int] = {}
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={'FULL' if fsync else 'NORMAL'}")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise OrchestrationError(f"Cannot open bus database {path!r}: {exc}.") from exc
        try:
            self.slot = self._claim_slot()
            self._migrate_v1()
        except BaseException:
            self.close()
            raise
        self.where = f"{path!r} (bus {name!r}, slot {self.slot})"

    def close(self) -> None:
        try:
            self._db.close()
        finally:
            for fd in self._locks.values():
                os.close(fd)  # drops the flock
            self._locks.clear()

    def _sql(self, text: str) -> str:
        return text.replace("%s", "?")

    def _many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            self._db.executemany(self._sql(sql), rows)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        db = self._db
        db.execute("BEGIN IMMEDIATE")  # take the write lock now: another process may be writing
        try:
            yield
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _migrate_v1(self) -> None:
        """Move a one-bus file of an earlier version (tables ``messages``, ``rcpt``, ...) into
        slot 0 of this bus's name."""
        with self._transaction():
            found = self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'messages'").fetchone()
            if found is None:
                return
            for statement in _V1_MIGRATION:
                self._db.execute(statement, (self.name,))
            for table in ("messages", "rcpt", "dead_letters", "agents"):
                self._db.execute(f"DROP TABLE {table}")

    def _try_lock(self, slot: int) -> bool:
        if slot in self._locks:
            return False
        fd = os.open(f"{self.path}.lock" + (f".{slot}" if slot else ""), os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:  # pragma: no branch
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                return False
        self._locks[slot] = fd
        return True

    def _unlock(self, slot: int) -> None:
        fd = self._locks.pop(slot, None)
        if fd is not None:
            os.close(fd)
