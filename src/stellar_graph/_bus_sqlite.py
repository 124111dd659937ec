"""A durable bus's rows in a SQLite file (the default beside the checkpoints).

WAL mode with ``synchronous=NORMAL`` by default: a committed message survives the process being
killed (the WAL write happens before ``COMMIT`` returns) but not a power cut; ``fsync=True``
switches to ``synchronous=FULL`` for that.

One bus at a time may own a file: an ``flock`` on ``<path>.lock`` refuses a second one (the OS
drops the lock when the owner dies, even by SIGKILL).
"""

from __future__ import annotations

import os
import sqlite3

from stellar_graph._bus_store import Batch, Recovered
from stellar_graph.errors import ConfigurationError, OrchestrationError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows has no flock; the lock is then advisory only
    fcntl = None  # type: ignore[assignment]

__all__ = ["SqliteBackend"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY, message_id TEXT NOT NULL, meta TEXT NOT NULL, content TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rcpt (
    seq INTEGER NOT NULL, recipient TEXT NOT NULL, status TEXT NOT NULL,
    attempts INTEGER NOT NULL, PRIMARY KEY (seq, recipient)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS dead_letters (id INTEGER PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS agents (
    agent_id TEXT PRIMARY KEY, agent_type TEXT, groups TEXT NOT NULL
);
"""


class SqliteBackend:
    """The four tables in one SQLite file, owned by one bus at a time."""

    fix = "check disk space and permissions, then resend."

    def __init__(self, path: str, *, fsync: bool = False) -> None:
        if not path or path == ":memory:":
            raise ConfigurationError(
                f"mode='durable' needs a file path, got path={path!r}. Fix: pass "
                f"path='bus.sqlite' (or use mode='memory').",
                field="path",
                value=path,
            )
        self.path = path
        self.where = repr(path)
        self.off_loop = fsync  # an fsync waits for the disk: not on the loop
        self._lock_fd = _lock(path)
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={'FULL' if fsync else 'NORMAL'}")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            os.close(self._lock_fd)
            raise OrchestrationError(f"Cannot open bus database {path!r}: {exc}.") from exc

    def load(self, dead_letter_limit: int) -> Recovered:
        db = self._db
        out = Recovered()
        db.execute("DELETE FROM rcpt WHERE seq NOT IN (SELECT seq FROM messages)")
        out.messages = list(db.execute("SELECT seq, message_id, meta, content FROM messages ORDER BY seq"))
        for seq, recipient, status, attempts in db.execute("SELECT * FROM rcpt"):
            out.rcpt.setdefault(seq, {})[recipient] = (status, attempts)
        out.agents = list(db.execute("SELECT agent_id, agent_type, groups FROM agents ORDER BY rowid"))
        rows = db.execute("SELECT body FROM dead_letters ORDER BY id DESC LIMIT ?", (dead_letter_limit,))
        out.dead_letters = [body for (body,) in rows][::-1]
        db.execute(
            "DELETE FROM dead_letters WHERE id <= (SELECT max(id) FROM dead_letters) - ?",
            (dead_letter_limit,),
        )
        return out

    def write(self, batch: Batch) -> None:
        db = self._db
        try:
            db.execute("BEGIN")
            if batch.rows:
                db.executemany("INSERT INTO messages VALUES (?, ?, ?, ?)", batch.rows)
            if batch.updates:
                db.executemany("INSERT OR REPLACE INTO rcpt VALUES (?, ?, ?, ?)", batch.updates)
            if batch.finished:
                db.executemany("DELETE FROM messages WHERE seq = ?", [(s,) for s in batch.finished])
            if batch.finished_rcpt:
                db.executemany("DELETE FROM rcpt WHERE seq = ?", [(s,) for s in batch.finished_rcpt])
            if batch.dead:
                db.executemany("INSERT INTO dead_letters (body) VALUES (?)", [(b,) for b in batch.dead])
            for agent_id, entry in batch.agents.items():
                if entry is None:
                    db.execute("DELETE FROM agents WHERE agent_id = ?", (agent_id,))
                else:
                    db.execute("INSERT OR REPLACE INTO agents VALUES (?, ?, ?)", (agent_id, *entry))
            db.execute("COMMIT")
        except sqlite3.Error:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        try:
            self._db.close()
        finally:
            if self._lock_fd >= 0:
                os.close(self._lock_fd)
                self._lock_fd = -1


def _lock(path: str) -> int:
    fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    if fcntl is None:  # pragma: no cover
        return fd
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise OrchestrationError(
            f"Another AdvancedMessageBus already owns {path!r} (lock file {path}.lock is held). "
            f"Fix: close that bus first, or give this one its own path."
        ) from None
    return fd
