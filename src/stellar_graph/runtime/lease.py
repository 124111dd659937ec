"""Leases: several processes driving one orchestra thread without stepping on each other.

Two things must be exclusive across processes that share the orchestra's database:

- **control runs** on one thread: two overlapping runs on one LangGraph thread both start from
  the same checkpoint and one's update is lost (an agent slot booked twice, a task dropped).
  :meth:`Lease.control` is held around each control run; the next run, in whichever process,
  starts from the checkpoint the last one wrote.
- **task runs**: a process starting up resumes the task runs the state says are running, but
  one that another live process is running must be left alone. :meth:`Lease.claim` takes a
  task run's thread for this process until :meth:`Lease.release` or the process's end (a killed
  process's claims go with it, so a restart resumes its runs).

Backends: PostgreSQL advisory locks (session-level, on two dedicated connections), POSIX
byte-range locks on ``<data_dir>/runs.lock`` for SQLite (released by the kernel when the process
dies), and nothing for the in-memory backend (one process by definition).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stellar_graph.persistence import (
    ADVISORY_CLASS,
    advisory_key,
    advisory_lock,
    backend_of,
    database_url,
    sqlite_paths,
    try_advisory_lock,
)

if TYPE_CHECKING:
    from stellar_graph.config import PersistenceConfig

__all__ = ["FileLease", "Lease", "PostgresLease", "lease_for", "open_lease"]

logger = logging.getLogger(__name__)

_POLL = 0.002
"""Seconds between tries while another process holds the control lease."""


class Lease:
    """One process: nothing to exclude (the in-memory backend, or a caller's own saver)."""

    @contextlib.asynccontextmanager
    async def control(self, thread_id: str) -> AsyncIterator[None]:
        """Hold the orchestra thread's control lease for one control run."""
        yield

    async def claim(self, thread_id: str) -> bool:
        """Take a task run's thread for this process; ``False`` if another process holds it."""
        return True

    async def release(self, thread_id: str) -> None:
        """Give a task run's thread back."""

    async def aclose(self) -> None:
        """Release everything this process holds."""


class FileLease(Lease):
    """POSIX byte-range locks on one file (SQLite: processes on one machine share a data dir).

    Byte 0 is the control lease; a task run's thread locks one byte at an offset from its CRC
    (a collision between two live task threads only delays a resume until the next start-up).
    """

    _TASK_BYTES = 1 << 30

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        self._local = asyncio.Lock()  # POSIX locks are per process: exclude this process's own tasks too

    @contextlib.asynccontextmanager
    async def control(self, thread_id: str) -> AsyncIterator[None]:
        async with self._local:
            offset = zlib.crc32(f"control\x1f{thread_id}".encode()) % self._TASK_BYTES
            while not self._try(offset):  # noqa: ASYNC110 (another process holds it: no event to wait on)
                await asyncio.sleep(_POLL)
            try:
                yield
            finally:
                fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, offset)

    async def claim(self, thread_id: str) -> bool:
        return self._try(self._offset(thread_id))

    def _try(self, offset: int) -> bool:
        try:
            fcntl.lockf(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset)
        except OSError:
            return False
        return True

    async def release(self, thread_id: str) -> None:
        fcntl.lockf(self._fd, fcntl.LOCK_UN, 1, self._offset(thread_id))

    async def aclose(self) -> None:
        os.close(self._fd)  # drops every lock this process holds on the file

    def _offset(self, thread_id: str) -> int:
        return self._TASK_BYTES + zlib.crc32(thread_id.encode()) % self._TASK_BYTES


class PostgresLease(Lease):
    """PostgreSQL advisory locks: one connection waits for control leases, one holds task claims.

    A connection the server dropped (a restart, a failover, an idle timeout) is reopened on its
    next use. The server released that session's locks with it: the claims this process still
    holds are taken again on the new connection (one another process took meanwhile is logged,
    and that process runs it).
    """

    def __init__(self, url: str, control: Any, claims: Any) -> None:
        self._url, self._control, self._claims = url, control, claims
        self._held: set[str] = set()
        self._local = asyncio.Lock()

    @classmethod
    async def connect(cls, url: str) -> PostgresLease:
        """Open the two autocommit connections."""
        return cls(url, await _connect(url), await _connect(url))

    @contextlib.asynccontextmanager
    async def control(self, thread_id: str) -> AsyncIterator[None]:
        key = advisory_key(f"control\x1f{thread_id}")
        async with self._local:
            try:  # a closed connection raises the same error as one the server just dropped
                await advisory_lock(self._control, ADVISORY_CLASS, key, every=_POLL)
            except _dropped():
                self._control = await _connect(self._url)
                await advisory_lock(self._control, ADVISORY_CLASS, key, every=_POLL)
            try:
                yield
            finally:
                with contextlib.suppress(*_dropped()):  # a dropped session's locks went with it
                    await self._control.execute("SELECT pg_advisory_unlock(%s, %s)", (ADVISORY_CLASS, key))

    async def claim(self, thread_id: str) -> bool:
        key = advisory_key(thread_id)
        try:
            taken = await try_advisory_lock(self._claims, ADVISORY_CLASS, key)
        except _dropped():
            await self._reopen_claims()
            taken = await try_advisory_lock(self._claims, ADVISORY_CLASS, key)
        if taken:
            self._held.add(thread_id)
        return taken

    async def release(self, thread_id: str) -> None:
        self._held.discard(thread_id)
        with contextlib.suppress(*_dropped()):  # gone with the session: nothing to give back
            await self._claims.execute("SELECT pg_advisory_unlock(%s, %s)", (ADVISORY_CLASS, advisory_key(thread_id)))

    async def _reopen_claims(self) -> None:
        """A new claims connection, holding again the claims this process had (the server dropped them)."""
        self._claims = await _connect(self._url)
        for thread in sorted(self._held):
            if not await try_advisory_lock(self._claims, ADVISORY_CLASS, advisory_key(thread)):
                logger.warning("task run %s was claimed by another process while this one was disconnected", thread)
                self._held.discard(thread)

    async def aclose(self) -> None:
        for conn in (self._control, self._claims):
            await conn.close()


async def _connect(url: str) -> Any:
    from psycopg import AsyncConnection

    return await AsyncConnection.connect(url, autocommit=True)


def _dropped() -> tuple[type[BaseException], ...]:
    """What psycopg raises when the server dropped the session (its locks went with it)."""
    from psycopg import OperationalError

    return (OperationalError,)


async def open_lease(saver: Any, *, data_dir: Path | None = None, database_url: str | None = None) -> Lease:
    """The lease that fits the saver: PostgreSQL, SQLite (a lock file beside it) or none."""
    kind = backend_of(saver)
    if kind == "postgres" and database_url:
        return await PostgresLease.connect(database_url)
    if kind == "sqlite" and data_dir is not None:
        return FileLease(data_dir / "runs.lock")
    return Lease()


async def lease_for(saver: Any, config: PersistenceConfig) -> Lease:
    """The lease for a saver opened from ``config`` (its data directory, its database URL)."""
    return await open_lease(saver, data_dir=sqlite_paths(config)[0].parent, database_url=database_url(config))
