"""Maintenance half of the operations mixin: maintenance mode and bounded storage."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from stellar_graph.history import aprune_task_threads
from stellar_graph.ops import _hooks
from stellar_graph.ops import maintenance as _maintenance
from stellar_graph.ops._base import OpsBase
from stellar_graph.ops.maintenance import merge_summaries, plan_board_prune, vacuum_sqlite
from stellar_graph.records import task_thread_id

__all__ = ["MaintenanceMixin"]

class MaintenanceMixin(OpsBase):
    """``enter_maintenance_mode``, ``perform_system_maintenance``, ``exit_maintenance_mode``."""

    @property
    def maintenance_mode(self) -> bool:
        """True between :meth:`enter_maintenance_mode` and :meth:`exit_maintenance_mode`."""
        return self._operations().maintenance_since is not None

    async def enter_maintenance_mode(
        self, reason: str = "maintenance", *, wait_seconds: float | None = None
    ) -> dict[str, Any]:
        """Hold new runs (work is still accepted, validated and queued in order) and let the run in flight finish.

        Args:
            reason: recorded in the ``maintenance`` event.
            wait_seconds: how long to wait for the run in flight (``None``: as long as it takes).

        Returns:
            ``since``, ``run_in_flight`` (True if it outlasted ``wait_seconds``), ``queued_runs``.
        """
        ops = self._operations()
        if ops.maintenance_since is None:
            self.pause_runs()
            ops.maintenance_since = self.now()
        quiet = await _hooks.wait_quiet(self, wait_seconds)
        runtime = _hooks.runtime_status(self)
        status = {
            "since": ops.maintenance_since.isoformat(),
            "run_in_flight": not quiet,
            "queued_runs": runtime["queued_runs"],
        }
        await self.emit({"type": "maintenance", "phase": "entered", "reason": reason, **status})
        return status

    async def exit_maintenance_mode(self) -> dict[str, Any]:
        """Let the held runs proceed, in the order they were queued.

        Returns:
            ``released_runs`` and ``seconds`` spent in maintenance mode.
        """
        ops = self._operations()
        since, ops.maintenance_since = ops.maintenance_since, None
        released = _hooks.runtime_status(self)["queued_runs"]
        self.resume_runs()
        status = {
            "released_runs": released,
            "seconds": (self.now() - since).total_seconds() if since else 0.0,
        }
        await self.emit({"type": "maintenance", "phase": "exited", **status})
        return status

    async def perform_system_maintenance(
        self,
        *,
        prune_finished_older_than: timedelta | float | None = timedelta(hours=24),
        prune_checkpoints: bool = True,
        vacuum: bool = True,
    ) -> dict[str, Any]:
        """Bound storage: prune finished tasks and old checkpoints, compact the file; report it all.

        Runs in maintenance mode (entered and left around the call if needed), so no run writes
        meanwhile. Finished tasks leave the board after the horizon, summarised first (counts and
        agent time by agent, kept in the Store and in ``pruned_*`` metric counters); tasks still
        named as dependencies stay. Checkpoints: only the latest of each namespace is kept (what
        resuming needs); the SQLite file is vacuumed.

        Args:
            prune_finished_older_than: horizon (a ``timedelta`` or seconds); ``None`` keeps the board.
            prune_checkpoints: prune the thread's checkpoint history.
            vacuum: compact the SQLite file afterwards.

        Returns:
            ``board``, ``checkpoints``, ``storage`` (``before``/``after`` bytes per file) and
            ``seconds``.
        """
        temporary = not self.maintenance_mode
        if temporary:
            await self.enter_maintenance_mode("perform_system_maintenance")
        started = time.perf_counter()
        try:
            before = await self._storage_sizes()
            await self._collect_node_timings()  # before the history they come from is pruned
            board = await self._prune_board(prune_finished_older_than)
            if prune_finished_older_than is not None and self.store is not None:
                horizon = prune_finished_older_than
                horizon = horizon if isinstance(horizon, timedelta) else timedelta(seconds=float(horizon))
                board["task_threads_deleted"] = board.get("task_threads_deleted", 0) + await aprune_task_threads(
                    self.store, self.checkpointer, self.thread_id, finished_before=(self.now() - horizon).isoformat()
                )
            checkpoints = (
                await _maintenance.prune_checkpoints(self.checkpointer, self.thread_id)
                if prune_checkpoints
                else {"skipped": "prune_checkpoints=False"}
            )
            vacuumed = await vacuum_sqlite(self.checkpointer) if vacuum else False
            await _hooks.refresh_state(self)
            report = {
                "board": board,
                "checkpoints": {**checkpoints, "vacuumed": vacuumed},
                "storage": {"before": before, "after": await self._storage_sizes()},
                "seconds": round(time.perf_counter() - started, 3),
            }
            self._operations().last_maintenance = {"at": self.now().isoformat(), **report}
            await self.emit({"type": "maintenance", "phase": "performed", **report})
        finally:
            if temporary:
                await self.exit_maintenance_mode()
        return report

    async def _prune_board(self, horizon: timedelta | float | None) -> dict[str, Any]:
        if horizon is None:
            return {"skipped": "prune_finished_older_than=None"}
        if _hooks.runtime_status(self)["run_in_flight"]:
            return {"skipped": "a run is in flight"}
        horizon = horizon if isinstance(horizon, timedelta) else timedelta(seconds=float(horizon))
        config = {"configurable": {"thread_id": self.thread_id}}
        snapshot = await self.app.aget_state(config)
        if snapshot.next:
            return {
                "skipped": f"the thread has an unfinished run (next: {list(snapshot.next)}); it resumes first"
            }
        values = snapshot.values or {}
        plan = plan_board_prune(
            values.get("tasks") or {},
            values.get("allocations") or {},
            now=self.now(),
            older_than=horizon,
        )
        deleted = 0
        if plan.task_ids:
            # As if `dispatch` wrote it: it routes by `Command` only, so the thread stays idle.
            await self.app.aupdate_state(config, plan.update(), as_node="dispatch")
            tasks = values.get("tasks") or {}
            for tid in plan.task_ids:  # their task runs' threads go too: history, not state
                for run in range(1, int(tasks[tid].get("runs", 0)) + 1):
                    await self.checkpointer.adelete_thread(task_thread_id(self.thread_id, tid, run))
                    deleted += 1
            doc = await self._load_doc()
            doc["pruned"] = merge_summaries(doc.get("pruned"), plan.summary)
            await self._save_doc(doc)
        return {
            "pruned_tasks": len(plan.task_ids),
            "pruned_allocations": len(plan.allocation_ids),
            "task_threads_deleted": deleted,
            "kept_for_dependents": plan.kept_for_dependents,
            "remaining_tasks": len(values.get("tasks") or {}) - len(plan.task_ids),
            "horizon_seconds": horizon.total_seconds(),
            "summary": plan.summary,
        }
