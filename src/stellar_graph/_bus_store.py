"""SQLite persistence for ``AdvancedMessageBus(mode="durable")``.

Tables: ``messages`` (one row per accepted message not yet finished), ``rcpt`` (per-recipient
state once it differs from "queued"), ``dead_letters`` and ``agents``. Writes are collected and
committed together once per event-loop tick (group commit): every sender that enqueues in the
same tick awaits the same future, resolved by one ``COMMIT``. A finished message's rows are
deleted, so the file holds only live traffic.

The database runs in WAL mode with ``synchronous=NORMAL`` by default: a committed message
survives the process being killed (the WAL write happens before ``COMMIT`` returns) but not a
power cut; ``fsync=True`` switches to ``synchronous=FULL`` for that.

One bus at a time may own a file: an ``flock`` on ``<path>.lock`` refuses a second one (the OS
drops the lock when the owner dies, even by SIGKILL).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from stellar_graph._bus_message import Envelope
from stellar_graph.errors import ConfigurationError, OrchestrationError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows has no flock; the lock is then advisory only
    fcntl = None  # type: ignore[assignment]

__all__ = ["DurableStore", "Recovered"]

logger = logging.getLogger(__name__)

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

CommitCallback = Callable[[list[Envelope], BaseException | None], None]


@dataclass
class Recovered:
    """What a store held when it was opened."""

    messages: list[tuple[int, str, str, str]] = field(default_factory=list)
    """``(seq, message_id, meta_json, content_json)`` in seq order."""
    rcpt: dict[int, dict[str, tuple[str, int]]] = field(default_factory=dict)
    """seq -> recipient -> (status, attempts)."""
    agents: list[tuple[str, str | None, str]] = field(default_factory=list)
    dead_letters: list[str] = field(default_factory=list)


class DurableStore:
    """Group-committing SQLite writer behind a durable bus."""

    def __init__(self, path: str, on_commit: CommitCallback, *, fsync: bool = False) -> None:
        if not path or path == ":memory:":
            raise ConfigurationError(
                f"mode='durable' needs a file path, got path={path!r}. Fix: pass "
                f"path='bus.sqlite' (or use mode='memory').",
                field="path",
                value=path,
            )
        self.path = path
        self._lock_fd = _lock(path)
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={'FULL' if fsync else 'NORMAL'}")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            os.close(self._lock_fd)
            raise OrchestrationError(f"Cannot open bus database {path!r}: {exc}.") from exc
        self._on_commit = on_commit
        self._rows: list[tuple[int, str, str, str]] = []
        self._envs: list[Envelope] = []
        self._future: asyncio.Future[None] | None = None
        self._updates: dict[tuple[int, str], tuple[str, int]] = {}
        self._finished: list[int] = []
        self._dead: list[tuple[str]] = []
        self._agents: dict[str, tuple[str | None, str] | None] = {}
        self._with_rcpt: set[int] = set()
        self._scheduled = False
        self.commits = 0

    def load(self, dead_letter_limit: int) -> Recovered:
        """Read everything a previous owner left (call once, before any write)."""
        db = self._db
        out = Recovered()
        db.execute("DELETE FROM rcpt WHERE seq NOT IN (SELECT seq FROM messages)")
        out.messages = list(
            db.execute("SELECT seq, message_id, meta, content FROM messages ORDER BY seq")
        )
        for seq, recipient, status, attempts in db.execute("SELECT * FROM rcpt"):
            out.rcpt.setdefault(seq, {})[recipient] = (status, attempts)
        self._with_rcpt = set(out.rcpt)
        out.agents = list(
            db.execute("SELECT agent_id, agent_type, groups FROM agents ORDER BY rowid")
        )
        rows = db.execute(
            "SELECT body FROM dead_letters ORDER BY id DESC LIMIT ?", (dead_letter_limit,)
        )
        out.dead_letters = [body for (body,) in rows][::-1]
        db.execute(
            "DELETE FROM dead_letters WHERE id <= (SELECT max(id) FROM dead_letters) - ?",
            (dead_letter_limit,),
        )
        return out

    def add(self, env: Envelope, meta: str, content: str) -> asyncio.Future[None]:
        """Queue a new message row; the returned future resolves once it is committed.

        The bus is told about committed envelopes through ``on_commit`` before the future
        resolves, so a message is routed only once it is on disk.
        """
        if self._future is None:
            self._future = asyncio.get_running_loop().create_future()
        self._rows.append((env._seq, env.message_id, meta, content))
        self._envs.append(env)
        self._schedule()
        return self._future

    def insert(self, env: Envelope, meta: str, content: str) -> None:
        """Queue a message row the bus already routes (restored state); no future."""
        self._rows.append((env._seq, env.message_id, meta, content))
        self._schedule()

    def update(self, seq: int, recipient: str, status: str, attempts: int) -> None:
        """Record a recipient's new state (the latest one per tick wins)."""
        self._updates[(seq, recipient)] = (status, attempts)
        self._schedule()

    def finish(self, seq: int) -> None:
        """Forget a message whose every recipient is done."""
        self._finished.append(seq)
        self._schedule()

    def dead_letter(self, body: str) -> None:
        """Append a dead-letter record."""
        self._dead.append((body,))
        self._schedule()

    def put_agent(self, agent_id: str, agent_type: str | None, groups: str) -> None:
        """Upsert an agent's registration."""
        self._agents[agent_id] = (agent_type, groups)
        self._schedule()

    def drop_agent(self, agent_id: str) -> None:
        """Delete an agent's registration."""
        self._agents[agent_id] = None
        self._schedule()

    def flush(self) -> None:
        """Commit everything collected so far in one transaction (idempotent)."""
        self._scheduled = False
        if not (self._rows or self._updates or self._finished or self._dead or self._agents):
            return
        rows, envs, future = self._rows, self._envs, self._future
        self._rows, self._envs, self._future = [], [], None
        try:
            self._write(rows)
        except sqlite3.Error as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            logger.error("bus database %s: commit failed: %s", self.path, exc)
            error = OrchestrationError(
                f"Could not persist {len(rows)} message(s) to {self.path!r}: {exc}. "
                f"Fix: check disk space and permissions, then resend."
            )
            self._on_commit(envs, error)
            if future is not None and not future.done():
                future.set_exception(error)
            return
        self.commits += 1
        self._on_commit(envs, None)
        if future is not None and not future.done():
            future.set_result(None)

    def close(self) -> None:
        """Flush, close the database and release the file lock."""
        try:
            self.flush()
        finally:
            self._db.close()
            if self._lock_fd >= 0:
                os.close(self._lock_fd)
                self._lock_fd = -1

    def _write(self, rows: list[tuple[int, str, str, str]]) -> None:
        db = self._db
        finished = set(self._finished)
        updates = [
            (seq, r, st, att)
            for (seq, r), (st, att) in self._updates.items()
            if seq not in finished
        ]
        dead, agents = self._dead, self._agents
        self._updates, self._finished, self._dead, self._agents = {}, [], [], {}
        db.execute("BEGIN")
        if rows:
            db.executemany("INSERT INTO messages VALUES (?, ?, ?, ?)", rows)
        if updates:
            db.executemany("INSERT OR REPLACE INTO rcpt VALUES (?, ?, ?, ?)", updates)
            self._with_rcpt.update(u[0] for u in updates)
        if finished:
            db.executemany("DELETE FROM messages WHERE seq = ?", [(s,) for s in finished])
            with_rcpt = [(s,) for s in finished if s in self._with_rcpt]
            if with_rcpt:
                db.executemany("DELETE FROM rcpt WHERE seq = ?", with_rcpt)
                self._with_rcpt.difference_update(s for (s,) in with_rcpt)
        if dead:
            db.executemany("INSERT INTO dead_letters (body) VALUES (?)", dead)
        for agent_id, entry in agents.items():
            if entry is None:
                db.execute("DELETE FROM agents WHERE agent_id = ?", (agent_id,))
            else:
                db.execute("INSERT OR REPLACE INTO agents VALUES (?, ?, ?)", (agent_id, *entry))
        db.execute("COMMIT")

    def _schedule(self) -> None:
        if self._scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # called from synchronous code: write through
            self.flush()
            return
        self._scheduled = True
        loop.call_soon(self.flush)


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


def meta_json_fields(env: Envelope, expires_wall: float | None) -> dict[str, Any]:
    """The envelope's fields other than content, as stored in ``messages.meta``."""
    return {
        "sender": env.sender,
        "targets": list(env.targets),
        "recipients": list(env.recipients),
        "message_type": env.message_type,
        "priority_level": env.priority_level,
        "ttl_seconds": env.ttl_seconds,
        "expires_wall": expires_wall,
        "requires_ack": env.requires_ack,
        "conversation_id": env.conversation_id,
        "created_ts": env.created_ts,
    }
