"""Bounded storage: prune old checkpoints and finished tasks, measure the files.

Two things grow without bound in a long-lived orchestra thread:

- **checkpoints**: with ``durability="sync"`` every superstep saves the whole state, and every
  agent call leaves its subgraph's checkpoints (task runs default to ``exit``: one per run). Only the latest checkpoint of each namespace is
  needed to resume, plus the namespaces of subgraph calls belonging to that checkpoint.
  :func:`prune_checkpoints` keeps exactly those (the ``keep_latest`` rule of LangGraph's own
  PostgreSQL saver, which has ``aprune``; the SQLite saver has none, so it is done here in SQL).
- **the task board**: every finished task stays in the state, so each checkpoint grows with
  the history. :func:`plan_board_prune` picks finished tasks older than a horizon that nothing
  still needs, and summarises them (counts and agent time by agent) before they are removed.

Example:
    >>> plan = plan_board_prune({}, {}, now=datetime(2026, 1, 1, tzinfo=UTC), older_than=timedelta(0))
    >>> plan.task_ids
    []
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from langgraph.checkpoint.base import BaseCheckpointSaver

from stellar_graph.board import FINISHED, allocation_id_for
from stellar_graph.errors import OrchestrationError
from stellar_graph.persistence import ThreadedSqliteSaver, ThreadedSqliteStore, backend_of

__all__ = [
    "BoardPrunePlan",
    "checkpoint_stats",
    "file_sizes",
    "merge_summaries",
    "plan_board_prune",
    "prune_checkpoints",
    "sqlite_file",
    "vacuum_sqlite",
]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
_TASKS_CHANNEL = "__pregel_tasks"  # pending Send packets of checkpoints before format v4


@dataclass
class BoardPrunePlan:
    """Finished tasks to remove from the board, and what to remember of them."""

    task_ids: list[str] = field(default_factory=list)
    allocation_ids: list[str] = field(default_factory=list)
    kept_for_dependents: list[str] = field(default_factory=list)
    """Finished tasks old enough but still named as a dependency by unfinished work."""
    summary: dict[str, Any] = field(default_factory=dict)
    """``{"tasks": n, "by_status": {...}, "agents": {agent: {tasks, completed, failed, wall_seconds, minutes}}}``."""

    def update(self) -> dict[str, Any]:
        """The state update that removes the tasks and their allocations (``None`` deletes)."""
        by_status = self.summary.get("by_status", {})
        metrics = {
            "pruned_tasks": len(self.task_ids),
            **{f"pruned_{s}": n for s, n in by_status.items()},
        }
        return {
            "tasks": dict.fromkeys(self.task_ids),
            "allocations": dict.fromkeys(self.allocation_ids),
            "metrics": metrics,
        }


def plan_board_prune(
    tasks: Mapping[str, Mapping[str, Any]],
    allocations: Mapping[str, Mapping[str, Any]],
    *,
    now: datetime,
    older_than: timedelta,
    keep_recent: int = 0,
) -> BoardPrunePlan:
    """Pick finished tasks that can leave the board.

    A task goes when it finished (``completed``, ``failed`` or ``refused``) at least
    ``older_than`` before ``now``, the optimizer has learned from it (or it never reached an
    agent), and no unfinished task names it as a dependency.

    Args:
        tasks: the board.
        allocations: allocation id -> record.
        now: the orchestra's clock.
        older_than: the horizon; ``timedelta(0)`` prunes every eligible finished task.
        keep_recent: the newest finished tasks that stay on the board anyway.

    Returns:
        The plan, with the summary of what it removes.
    """
    needed = {
        d
        for t in tasks.values()
        if t.get("status") not in FINISHED
        for d in t.get("dependencies") or []
    }
    cutoff = now - older_than
    plan = BoardPrunePlan()
    for tid, task in tasks.items():
        if task.get("status") not in FINISHED or (task.get("agent_id") and not task.get("learned")):
            continue
        if (
            _time(task.get("finished_at") or task.get("allocated_at") or task.get("submitted_at"))
            > cutoff
        ):
            continue
        if tid in needed:
            plan.kept_for_dependents.append(tid)
            continue
        plan.task_ids.append(tid)
        if allocation_id_for(tid) in allocations:
            plan.allocation_ids.append(allocation_id_for(tid))
    if keep_recent:
        plan.task_ids.sort(key=lambda t: _time(tasks[t].get("finished_at")))
        plan.task_ids = plan.task_ids[:-keep_recent]
        kept = set(plan.task_ids)
        plan.allocation_ids = [a for a in plan.allocation_ids if a.removeprefix("alloc-") in kept]
    plan.task_ids.sort()
    plan.kept_for_dependents.sort()
    plan.summary = _summarise([tasks[t] for t in plan.task_ids])
    return plan


def _time(value: Any) -> datetime:
    if not value:
        return datetime.min.replace(tzinfo=UTC)
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _summarise(tasks: list[Mapping[str, Any]]) -> dict[str, Any]:
    by_status: dict[str, int] = {}
    agents: dict[str, dict[str, float]] = {}
    for task in tasks:
        status = task["status"]
        by_status[status] = by_status.get(status, 0) + 1
        agent_id = task.get("agent_id")
        if not agent_id:
            continue
        report = task.get("report") or {}
        row = agents.setdefault(
            agent_id, {"tasks": 0, "completed": 0, "failed": 0, "wall_seconds": 0.0, "minutes": 0.0}
        )
        row["tasks"] += 1
        row["completed" if status == "completed" else "failed"] += 1
        row["wall_seconds"] += float(report.get("wall_seconds") or task.get("wall_seconds") or 0.0)
        row["minutes"] += float(report.get("duration_minutes") or 0.0)
    return {"tasks": len(tasks), "by_status": by_status, "agents": agents}


def merge_summaries(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> dict[str, Any]:
    """Add a prune summary to the running one (counts and times add up)."""
    merged: dict[str, Any] = {"tasks": 0, "by_status": {}, "agents": {}}
    for part in (old or {}, new):
        merged["tasks"] += int(part.get("tasks", 0))
        for status, n in (part.get("by_status") or {}).items():
            merged["by_status"][status] = merged["by_status"].get(status, 0) + n
        for agent_id, row in (part.get("agents") or {}).items():
            into = merged["agents"].setdefault(agent_id, {})
            for key, value in row.items():
                into[key] = into.get(key, 0) + value
    return merged


# -- checkpoints ----------------------------------------------------------------------------


async def prune_checkpoints(saver: Any, thread_id: str) -> dict[str, Any]:
    """Keep only what resuming ``thread_id`` needs: the latest checkpoint of each namespace.

    Subgraph-call namespaces (``node:<task id>``) that belong to an older root checkpoint are
    removed entirely; those of the latest root checkpoint stay, so an interrupted step still
    resumes its agents where they stopped.

    Args:
        saver: the checkpointer (SQLite, PostgreSQL or in-memory).
        thread_id: the thread to prune.

    Returns:
        ``backend``, ``supported`` and, where counted, ``deleted_checkpoints``,
        ``deleted_writes``, ``deleted_namespaces``, ``kept_checkpoints``.
    """
    kind = backend_of(saver)
    if is_sqlite_saver(saver):
        return {"backend": "sqlite", "supported": True, **await _prune_sqlite(saver, thread_id)}
    if kind == "memory":
        return {"backend": "memory", "supported": True, **_prune_memory(saver, thread_id)}
    try:
        await saver.aprune([thread_id], strategy="keep_latest")
    except NotImplementedError as exc:
        return {
            "backend": type(saver).__name__,
            "supported": False,
            "reason": f"{type(saver).__name__}.aprune: {exc or 'not implemented'}",
        }
    return {
        "backend": "postgres" if kind == "postgres" else type(saver).__name__,
        "supported": True,
        "method": "aprune(keep_latest)",
    }


async def _prune_sqlite(saver: Any, thread_id: str) -> dict[str, int]:
    return await on_sqlite(saver, lambda conn: _prune_sqlite_rows(conn, saver.serde, thread_id))


def _prune_sqlite_rows(conn: sqlite3.Connection, serde: Any, thread_id: str) -> dict[str, int]:
    heads = conn.execute(
        "SELECT checkpoint_ns, MAX(checkpoint_id) FROM checkpoints WHERE thread_id = ? GROUP BY checkpoint_ns",
        (thread_id,),
    ).fetchall()
    roots = {
        r[0]
        for r in conn.execute(
            "SELECT checkpoint_id FROM checkpoints WHERE thread_id = ? AND checkpoint_ns = ''", (thread_id,)
        )
    }
    kept: dict[str, list[str]] = {}
    started_from: dict[str, str | None] = {}
    for ns, head in heads:
        kept[ns], started_from[ns] = _sqlite_head(conn, serde, thread_id, ns, head)
    root_head = set(kept.get("", []))
    calls = [ns for ns in kept if ":" in ns and started_from[ns] in roots and started_from[ns] not in root_head]
    counts = {"deleted_checkpoints": 0, "deleted_writes": 0, "deleted_namespaces": len(calls)}
    names = json.dumps(calls)

    def delete(sql: str, params: tuple[Any, ...]) -> int:
        return max(conn.execute(sql, params).rowcount, 0)

    counts["deleted_writes"] += delete(
        "DELETE FROM writes WHERE thread_id = ? AND checkpoint_ns IN (SELECT value FROM json_each(?))",
        (thread_id, names),
    )
    counts["deleted_checkpoints"] += delete(
        "DELETE FROM checkpoints WHERE thread_id = ? AND checkpoint_ns IN (SELECT value FROM json_each(?))",
        (thread_id, names),
    )
    for ns, ids in kept.items():
        if ns in calls:
            continue
        keep = json.dumps(ids)
        # Writes go by the checkpoints deleted: a run may save a step's writes before its checkpoint.
        counts["deleted_writes"] += delete((
            "DELETE FROM writes WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id IN (SELECT checkpoint_id "
            "FROM checkpoints WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id NOT IN (SELECT value FROM json_each(?)))"
        ), (thread_id, ns, thread_id, ns, keep))  # fmt: skip
        counts["deleted_checkpoints"] += delete((
            "DELETE FROM checkpoints WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id NOT IN (SELECT value FROM json_each(?))"
        ), (thread_id, ns, keep))  # fmt: skip
        conn.execute(
            "UPDATE checkpoints SET parent_checkpoint_id = NULL WHERE thread_id = ? AND checkpoint_ns = ? "
            "AND parent_checkpoint_id NOT IN (SELECT value FROM json_each(?))",
            (thread_id, ns, keep),
        )
    conn.commit()
    counts["kept_checkpoints"] = sum(len(ids) for ns, ids in kept.items() if ns not in calls)
    return counts


def _sqlite_head(conn: sqlite3.Connection, serde: Any, thread_id: str, ns: str, head: str) -> tuple[list[str], str | None]:
    """The ids to keep in one namespace, and the root checkpoint its subgraph call started from."""
    kind, blob, parent, metadata = conn.execute((
        "SELECT type, checkpoint, parent_checkpoint_id, metadata FROM checkpoints "
        "WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?"
    ), (thread_id, ns, head)).fetchone()  # fmt: skip
    ids = [head]
    if parent and int(serde.loads_typed((kind, blob)).get("v", 4)) < 4:
        sends = conn.execute((
            "SELECT 1 FROM writes WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ? AND channel = ? LIMIT 1"
        ), (thread_id, ns, parent, _TASKS_CHANNEL)).fetchone()  # fmt: skip
        if sends:
            ids.append(parent)  # older checkpoints read their pending sends from the parent's writes
    meta = json.loads(metadata) if metadata else {}
    return ids, (meta.get("parents") or {}).get("")


def _prune_memory(saver: Any, thread_id: str) -> dict[str, int]:
    """The same rule over ``InMemorySaver``'s ``storage``, ``writes`` and ``blobs``."""
    spaces = saver.storage.get(thread_id) or {}
    roots = set(spaces.get("", {}))
    heads = {ns: max(ids) for ns, ids in spaces.items() if ids}
    root_head = heads.get("")
    counts = {
        "deleted_checkpoints": 0,
        "deleted_writes": 0,
        "deleted_namespaces": 0,
        "kept_checkpoints": 0,
    }
    for ns, head in heads.items():
        parents = (saver.serde.loads_typed(spaces[ns][head][1]) or {}).get("parents") or {}
        drop_all = ":" in ns and parents.get("") in roots and parents.get("") != root_head
        counts["deleted_namespaces"] += int(drop_all)
        for cid in [c for c in spaces[ns] if drop_all or c != head]:
            del spaces[ns][cid]
            counts["deleted_checkpoints"] += 1
            counts["deleted_writes"] += len(saver.writes.pop((thread_id, ns, cid), {}))
        referenced = set()
        for typed, _, _ in spaces[ns].values():
            referenced |= {
                (channel, v)
                for channel, v in saver.serde.loads_typed(typed)["channel_versions"].items()
            }
        for key in [
            k
            for k in saver.blobs
            if k[0] == thread_id and k[1] == ns and (k[2], k[3]) not in referenced
        ]:
            del saver.blobs[key]
        counts["kept_checkpoints"] += len(spaces[ns])
    for ns in [ns for ns, ids in spaces.items() if not ids]:
        del spaces[ns]
    return counts


async def vacuum_sqlite(saver: Any) -> bool:
    """``VACUUM`` the SQLite checkpoint file and truncate its write-ahead log; False if not SQLite."""
    if not is_sqlite_saver(saver):
        return False

    def vacuum(conn: sqlite3.Connection) -> None:
        conn.commit()  # VACUUM cannot run inside a transaction
        conn.execute("VACUUM")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    await on_sqlite(saver, vacuum)
    return True


def is_sqlite_saver(saver: Any) -> bool:
    """LangGraph's SQLite savers (sync, aiosqlite, or the project's :class:`ThreadedSqliteSaver`)."""
    return isinstance(saver, BaseCheckpointSaver) and backend_of(saver) == "sqlite"


async def on_sqlite(part: Any, fn: Callable[[sqlite3.Connection], _T]) -> _T:
    """Run ``fn(connection)`` against a SQLite saver's or store's database, off the event loop.

    The project's threaded saver and store run it on their own thread and connection (under the
    saver's lock); LangGraph's aiosqlite ones get a short-lived connection of its own to the
    same file, while their lock keeps this process's own use of theirs waiting.

    Raises:
        OrchestrationError: the database is in memory (no file to connect to).
    """
    if isinstance(part, ThreadedSqliteSaver | ThreadedSqliteStore):

        def locked() -> _T:
            with part.lock:  # LangGraph's own calls on that connection take it too
                return fn(part.conn)

        return await part.arun(locked)
    path = await sqlite_file(part)
    if path is None:
        raise OrchestrationError(f"{type(part).__name__} has no database file to maintain (an in-memory SQLite database)")

    def own() -> _T:
        conn = sqlite3.connect(str(path), timeout=30)
        try:
            return fn(conn)
        finally:
            conn.close()

    async with part.lock:
        return await asyncio.to_thread(own)


async def sqlite_file(part: Any) -> Path | None:
    """The database file behind a SQLite saver or store (``None`` otherwise, or in memory);
    subclasses of LangGraph's aiosqlite classes included."""
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
    from langgraph.store.sqlite.aio import AsyncSqliteStore

    if isinstance(part, ThreadedSqliteSaver | ThreadedSqliteStore):
        rows = await part.arun(lambda: part.conn.execute("PRAGMA database_list").fetchall())
    elif isinstance(part, AsyncSqliteSaver | AsyncSqliteStore):
        async with part.lock, part.conn.execute("PRAGMA database_list") as cursor:
            rows = list(await cursor.fetchall())
    else:
        return None
    main = next((r[2] for r in rows if r[1] == "main"), "")
    return Path(main) if main else None


async def checkpoint_stats(saver: Any, thread_id: str) -> dict[str, int] | None:
    """Checkpoint and write rows of a thread, and its namespaces (SQLite and in-memory; else ``None``)."""
    if is_sqlite_saver(saver):

        def count(conn: sqlite3.Connection) -> dict[str, int]:
            checkpoints, spaces = conn.execute(
                "SELECT COUNT(*), COUNT(DISTINCT checkpoint_ns) FROM checkpoints WHERE thread_id = ?", (thread_id,)
            ).fetchone()
            writes = conn.execute("SELECT COUNT(*) FROM writes WHERE thread_id = ?", (thread_id,)).fetchone()[0]
            return {"checkpoints": checkpoints, "namespaces": spaces, "writes": writes}

        return await on_sqlite(saver, count)
    if backend_of(saver) == "memory":
        spaces = saver.storage.get(thread_id) or {}
        writes = sum(len(w) for key, w in saver.writes.items() if key[0] == thread_id)
        return {
            "checkpoints": sum(len(c) for c in spaces.values()),
            "namespaces": len(spaces),
            "writes": writes,
        }
    return None


def file_sizes(paths: Mapping[str, Path]) -> dict[str, int]:
    """Bytes on disk of each file with its ``-wal`` and ``-shm`` companions (0 if absent)."""
    sizes: dict[str, int] = {}
    for name, path in paths.items():
        sizes[name] = sum(
            p.stat().st_size for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists()
        )
    return sizes


