"""Checkpointer and Store from settings: SQLite by default, in-memory, or PostgreSQL.

Example:
    >>> async def main():
    ...     async with open_persistence(PersistenceConfig(backend="memory")) as (saver, store):
    ...         app = create_orchestra().compile(checkpointer=saver, store=store)
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.store.base import BaseStore, Op, Result
from langgraph.store.sqlite import SqliteStore

from stellar_graph.config import PersistenceConfig
from stellar_graph.errors import ConfigurationError

__all__ = [
    "ADVISORY_CLASS",
    "DATABASE_URL_ENV",
    "DATA_DIR_ENV",
    "ThreadedSqliteSaver",
    "SETUP_LOCK",
    "ThreadedSqliteStore",
    "advisory_key",
    "backend_of",
    "open_persistence",
    "open_sqlite_saver",
    "open_sqlite_store",
    "resolved_backend",
    "sqlite_paths",
]

_T = TypeVar("_T")
DATA_DIR_ENV = "STELLAR_GRAPH_DATA_DIR"
DATABASE_URL_ENV = "STELLAR_GRAPH_DATABASE_URL"
POOL_SIZE = 10
"""Connections the checkpointer and Store share on PostgreSQL (task runs checkpoint concurrently)."""
POOL_OPEN_SECONDS = 10.0
"""How long opening PostgreSQL persistence waits for its first connection before failing."""


def sqlite_paths(config: PersistenceConfig) -> tuple[Path, Path]:
    """The checkpoint and store files under the data directory.

    Precedence: ``data_dir`` set explicitly in the config, then ``STELLAR_GRAPH_DATA_DIR``, then the
    default ``.stellar_graph``.
    """
    explicit = "data_dir" in config.model_fields_set
    root = Path(config.data_dir if explicit else os.environ.get(DATA_DIR_ENV) or config.data_dir).expanduser()
    return root / "checkpoints.sqlite", root / "store.sqlite"


def backend_of(part: object) -> str | None:
    """``sqlite``/``postgres``/``memory`` for a LangGraph saver or store, or a subclass of one
    (:class:`ThreadedSqliteSaver` is ``sqlite``); ``None`` for anything else."""
    for cls in type(part).__mro__:
        parts = cls.__module__.split(".")
        if parts[0] == "langgraph" and len(parts) > 2 and parts[1] in {"checkpoint", "store"}:
            return parts[2]
    return None


def database_url(config: PersistenceConfig) -> str | None:
    """The PostgreSQL URL: ``database_url`` in the config, else ``STELLAR_GRAPH_DATABASE_URL``."""
    return config.database_url or os.environ.get(DATABASE_URL_ENV)


def resolved_backend(config: PersistenceConfig) -> str:
    """``memory``, ``sqlite`` or ``postgres``: a database URL switches the default SQLite backend
    to PostgreSQL everywhere (checkpoints, store, leases and the message bus)."""
    return "postgres" if database_url(config) and config.backend != "memory" else config.backend


@asynccontextmanager
async def open_persistence(
    config: PersistenceConfig,
) -> AsyncIterator[tuple[BaseCheckpointSaver[str], BaseStore]]:
    """Open the configured checkpointer and store; close them on exit.

    Raises:
        ConfigurationError: PostgreSQL was asked for without a database URL or without the
            ``postgres`` extra installed.
    """
    url = database_url(config)
    backend = resolved_backend(config)
    if backend == "memory":
        from langgraph.checkpoint.memory import InMemorySaver
        from langgraph.store.memory import InMemoryStore

        yield InMemorySaver(), InMemoryStore()
    elif backend == "sqlite":
        checkpoints, store_file = sqlite_paths(config)
        checkpoints.parent.mkdir(parents=True, exist_ok=True)
        async with (
            open_sqlite_saver(checkpoints, synchronous=config.sqlite_synchronous) as saver,
            open_sqlite_store(store_file, synchronous=config.sqlite_synchronous) as store,
        ):
            yield saver, store
    else:
        async with _postgres(url) as pair:
            yield pair


class _OwnThread:
    """Mixin for LangGraph's sync SQLite classes: a worker thread of their own, where every use
    of their connection happens (``check_same_thread=False`` plus one thread: no interleaving)."""

    _thread_name = "stellar-graph-sqlite"

    def __init__(self, conn: sqlite3.Connection) -> None:
        super().__init__(conn)  # type: ignore[call-arg]
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self._thread_name)

    async def arun(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Call ``fn(*args)`` on the worker thread."""
        return await asyncio.get_running_loop().run_in_executor(self._worker, fn, *args)


@asynccontextmanager
async def _opened(part: _OwnThread, conn: sqlite3.Connection, prepare: Callable[[], None]) -> AsyncIterator[None]:
    """Run ``prepare`` on ``part``'s thread, then hold it open; finally stop its thread and close."""
    try:
        await part.arun(prepare)
        yield
    finally:
        part._worker.shutdown(wait=True)
        conn.close()


class ThreadedSqliteSaver(_OwnThread, SqliteSaver):
    """LangGraph's ``SqliteSaver``, its async calls each run whole on the saver's own thread.

    LangGraph's ``AsyncSqliteSaver`` goes through aiosqlite, which hands every statement to its
    thread and back: reading a checkpoint (the row, its pending writes, the cursors) is about six
    event-loop wake-ups, each waiting behind whatever else the loop is doing. A live orchestra
    reads and writes checkpoints on every control run and task run while its loop is busy; here
    each call is one hop (the same SQL, in LangGraph's own ``SqliteSaver``). Measured with
    ``tools/bench_live.py``: time to an agent's model call p50 ~123 -> ~78 ms. Open it with
    :func:`open_sqlite_saver`; :meth:`arun` runs other work on its connection.
    """

    _thread_name = "stellar-graph-saver"

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """:meth:`get_tuple` on the saver's thread."""
        return await self.arun(self.get_tuple, config)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """:meth:`list` on the saver's thread (read whole, then yielded)."""
        found = await self.arun(lambda: list(self.list(config, filter=filter, before=before, limit=limit)))
        for item in found:
            yield item

    async def aput(
        self, config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata, new_versions: ChannelVersions
    ) -> RunnableConfig:
        """:meth:`put` on the saver's thread."""
        return await self.arun(self.put, config, checkpoint, metadata, new_versions)

    async def aput_writes(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, task_path: str = ""
    ) -> None:
        """:meth:`put_writes` on the saver's thread."""
        await self.arun(self.put_writes, config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        """:meth:`delete_thread` on the saver's thread."""
        await self.arun(self.delete_thread, thread_id)


@asynccontextmanager
async def open_sqlite_saver(path: Path, *, synchronous: str = "normal") -> AsyncIterator[ThreadedSqliteSaver]:
    """A :class:`ThreadedSqliteSaver` on ``path`` (WAL journal, the given ``synchronous``), set up."""
    conn = sqlite3.connect(str(path), check_same_thread=False)
    saver = ThreadedSqliteSaver(conn)

    def prepare() -> None:
        saver.setup()  # WAL journal
        conn.execute(f"PRAGMA synchronous={synchronous.upper()}")

    async with _opened(saver, conn, prepare):
        yield saver


class ThreadedSqliteStore(_OwnThread, SqliteStore):
    """LangGraph's ``SqliteStore``, its async calls each run whole on the store's own thread.

    The same trade as :class:`ThreadedSqliteSaver`: ``AsyncSqliteStore``'s batch is ``BEGIN``,
    the cursor, each query and fetch, ``COMMIT`` and the close, about ten loop wake-ups; here one
    batch is one hop (the same SQL and transaction, in LangGraph's own ``SqliteStore.batch``).
    Open it with :func:`open_sqlite_store`.
    """

    _thread_name = "stellar-graph-store"

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """Run :meth:`batch` on the store's thread (one transaction, one hop)."""
        return await self.arun(self.batch, list(ops))


@asynccontextmanager
async def open_sqlite_store(path: Path, *, synchronous: str = "normal") -> AsyncIterator[ThreadedSqliteStore]:
    """A :class:`ThreadedSqliteStore` on ``path`` (WAL journal, the given ``synchronous``), set up."""
    conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
    store = ThreadedSqliteStore(conn)

    def prepare() -> None:
        conn.execute("PRAGMA journal_mode=WAL")  # readers never wait for the writer; as the saver
        conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
        store.setup()

    async with _opened(store, conn, prepare):
        yield store


ADVISORY_CLASS = 0x5347
"""``"SG"``: the first key of stellar_graph's two-key advisory locks (leases, bus slots)."""
SETUP_LOCK = 0x53470001
"""Advisory-lock key held while creating or migrating tables (LangGraph's and the bus's)."""


def advisory_key(text: str) -> int:
    """A signed 32-bit advisory-lock key for ``text`` (the second key, under :data:`ADVISORY_CLASS`)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big", signed=True)


async def try_advisory_lock(conn: Any, *key: int) -> bool:
    """``pg_try_advisory_lock(key)`` on an autocommit connection (one or two int keys)."""
    args = ", ".join(["%s"] * len(key))
    cursor = await conn.execute(f"SELECT pg_try_advisory_lock({args})", key)
    row = await cursor.fetchone()
    return bool(row and row[0])


async def advisory_lock(conn: Any, *key: int, every: float = 0.002) -> None:
    """Take a session advisory lock by polling, not by a waiting statement: a waiting statement
    is an open transaction (``CREATE INDEX CONCURRENTLY`` elsewhere waits for it), and a
    cancelled poll leaves no lock behind."""
    while not await try_advisory_lock(conn, *key):  # noqa: ASYNC110 (another session holds it)
        await asyncio.sleep(every)


@asynccontextmanager
async def _postgres(url: str | None) -> AsyncIterator[tuple[BaseCheckpointSaver[str], BaseStore]]:
    if not url:
        raise ConfigurationError(
            "persistence.backend is 'postgres' but no database URL is set. Fix: set "
            f"`persistence.database_url` or `{DATABASE_URL_ENV}`.",
            field="persistence.database_url",
        )
    try:
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
        from langgraph.store.postgres.aio import AsyncPostgresStore
    except ImportError:
        raise ConfigurationError(
            "PostgreSQL persistence needs the `postgres` extra: pip install 'stellar-graph[postgres]'.",
            field="persistence.backend",
            value="postgres",
        ) from None
    from psycopg import AsyncConnection
    from psycopg.rows import DictRow, dict_row
    from psycopg_pool import AsyncConnectionPool

    # A pool, not one connection: a connection the server dropped (a restart, a failover, an idle
    # timeout) is found by the check when it is next taken and replaced, so the orchestra goes on.
    pool = AsyncConnectionPool(
        url, connection_class=AsyncConnection[DictRow], min_size=1, max_size=POOL_SIZE, open=False,
        check=AsyncConnectionPool.check_connection,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
    )
    try:
        await pool.open(wait=True, timeout=POOL_OPEN_SECONDS)
    except Exception as exc:
        await pool.close()
        raise ConfigurationError(
            f"Cannot connect to PostgreSQL at {_where(url)} within {POOL_OPEN_SECONDS:g} s ({exc}). Fix: check "
            "`persistence.database_url` (host, port, database, credentials) and that the server is up.",
            field="persistence.database_url",
            value=_where(url),
        ) from exc
    async with pool:
        saver, store = AsyncPostgresSaver(pool), AsyncPostgresStore(pool)
        # Two processes setting up one fresh database at once hang in the migrations (each one's
        # CREATE INDEX CONCURRENTLY waits for the other's open transaction): one at a time. The
        # lock is polled, not waited for: a waiting statement is an open transaction too.
        async with await AsyncConnection.connect(url, autocommit=True) as conn:
            await advisory_lock(conn, SETUP_LOCK, every=0.05)
            try:
                await saver.setup()
                await store.setup()
            finally:
                await conn.execute("SELECT pg_advisory_unlock(%s)", (SETUP_LOCK,))
        yield saver, store


def _where(url: str) -> str:
    """``host:port/database`` of a PostgreSQL URL, without its credentials (for messages)."""
    try:
        parts = urlsplit(url)
        return f"{parts.hostname or 'localhost'}:{parts.port or 5432}{parts.path or '/'}"
    except ValueError:
        return "<unparsable URL>"
