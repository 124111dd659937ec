"""Maintenance: held work in maintenance mode, board and checkpoint pruning, bounded SQLite file."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from stellar_graph import REFERENCE_TEAM, InvalidInputError, StellarOrchestra
from stellar_graph.ops import OperationsMixin, plan_board_prune
from stellar_graph.ops.maintenance import merge_summaries
from tests.conftest import FIXED_NOW

Orchestra = (
    StellarOrchestra
    if issubclass(StellarOrchestra, OperationsMixin)
    else type("Orchestra", (OperationsMixin, StellarOrchestra), {})
)
MEMORY = {"persistence": {"backend": "memory"}}
SKILLS = ["ethics", "prototyping", "risk_analysis", "statistics"]  # one per reference agent type


def _tasks(prefix: str, n: int) -> list[dict[str, Any]]:
    return [
        {"id": f"{prefix}{i}", "description": "Do it", "required_skills": [SKILLS[i % 4]]}
        for i in range(n)
    ]


async def _team(orchestra: Any, per_type: int = 1) -> None:
    for spec in REFERENCE_TEAM:
        for i in range(per_type):
            await orchestra.register_agent(spec.default_profile(f"{spec.name}-{i:03d}"))


def _record(tid: str, status: str, minutes_ago: float, **extra: Any) -> dict[str, Any]:
    done = (FIXED_NOW - timedelta(minutes=minutes_ago)).isoformat()
    return {"id": tid, "status": status, "agent_id": "a", "learned": True, "finished_at": done,
            "report": {"agent_id": "a", "wall_seconds": 1.5, "duration_minutes": 10.0}, **extra}  # fmt: skip


def test_the_prune_plan_keeps_recent_unlearned_and_still_needed_tasks() -> None:
    tasks = {
        "old": _record("old", "completed", 120),
        "old-failed": _record("old-failed", "failed", 120),
        "recent": _record("recent", "completed", 5),
        "unlearned": _record("unlearned", "completed", 120, learned=False),
        "needed": _record("needed", "completed", 120),
        "waiting": {"id": "waiting", "status": "pending", "dependencies": ["needed"]},
        "refused": {
            "id": "refused",
            "status": "refused",
            "submitted_at": (FIXED_NOW - timedelta(hours=3)).isoformat(),
        },
    }
    allocations = {"alloc-old": {}, "alloc-old-failed": {}, "alloc-recent": {}}
    plan = plan_board_prune(tasks, allocations, now=FIXED_NOW, older_than=timedelta(hours=1))
    assert plan.task_ids == ["old", "old-failed", "refused"]
    assert plan.allocation_ids == ["alloc-old", "alloc-old-failed"]
    assert plan.kept_for_dependents == ["needed"]
    assert plan.summary == {
        "tasks": 3,
        "by_status": {"completed": 1, "failed": 1, "refused": 1},
        "agents": {
            "a": {"tasks": 2, "completed": 1, "failed": 1, "wall_seconds": 3.0, "minutes": 20.0}
        },
    }
    assert plan.update() == {
        "tasks": {"old": None, "old-failed": None, "refused": None},
        "allocations": {"alloc-old": None, "alloc-old-failed": None},
        "metrics": {
            "pruned_tasks": 3,
            "pruned_completed": 1,
            "pruned_failed": 1,
            "pruned_refused": 1,
        },
    }
    twice = merge_summaries(plan.summary, plan.summary)
    assert twice["tasks"] == 6 and twice["agents"]["a"]["wall_seconds"] == 6.0


async def test_maintenance_mode_holds_accepted_work_and_releases_it_in_order(fixed_clock) -> None:
    events: list[dict[str, Any]] = []
    async with Orchestra(MEMORY, clock=fixed_clock) as orchestra:
        orchestra.on("*", events.append)
        await _team(orchestra)
        entered = await orchestra.enter_maintenance_mode("upgrade")
        assert orchestra.maintenance_mode and entered["run_in_flight"] is False
        first = asyncio.create_task(orchestra.orchestrate_multiple_tasks(_tasks("a", 3)))
        second = asyncio.create_task(orchestra.orchestrate_multiple_tasks(_tasks("b", 2)))
        with pytest.raises(InvalidInputError):  # validated before it is queued, even now
            await orchestra.orchestrate_task({"id": "bad", "description": ""})
        try:
            diagnosis = await _until_held(orchestra, 2)
            assert orchestra.state().get("tasks", {}) == {}  # held, not run
            assert diagnosis["components"]["worker"]["status"] == "degraded"
        finally:
            exited = await orchestra.exit_maintenance_mode()
        allocations = [*(await first), *(await second)]
        await orchestra.wait_idle()
        tasks = orchestra.state()["tasks"]
    assert exited["released_runs"] == 2 and not orchestra.maintenance_mode
    assert [a.task_id for a in allocations] == ["a0", "a1", "a2", "b0", "b1"]
    assert sorted(tasks) == ["a0", "a1", "a2", "b0", "b1"]
    assert [tasks[t]["seq"] for t in ("a0", "b0")] == [1, 4]  # queued order kept
    assert all(t["status"] in {"completed", "failed"} for t in tasks.values())
    phases = [e["phase"] for e in events if e["type"] == "maintenance"]
    assert phases == ["entered", "exited"]


async def _until_held(orchestra: Any, runs: int) -> dict[str, Any]:
    for _ in range(500):
        diagnosis = await orchestra.perform_health_check()
        if diagnosis["components"]["worker"]["queued_runs"] == runs:
            return diagnosis
        await asyncio.sleep(0.01)
    raise AssertionError(f"{runs} runs were never held")


async def test_maintenance_prunes_the_board_and_checkpoints_and_the_state_stays_usable(
    fixed_clock,
) -> None:
    async with Orchestra(MEMORY, clock=fixed_clock) as orchestra:
        await _team(orchestra)
        await orchestra.orchestrate_multiple_tasks(_tasks("a", 12))
        await orchestra.wait_idle()
        before = orchestra.state()
        control_runs = orchestra.runtime_status()["control_runs"]
        agents_before = orchestra.registered_agents()
        # Checkpoints only: the state is exactly the same afterwards.
        report = await orchestra.perform_system_maintenance(prune_finished_older_than=None)
        assert orchestra.state()["tasks"] == before["tasks"]
        after_first = orchestra.checkpointer.storage[orchestra.thread_id]
        assert report["checkpoints"]["kept_checkpoints"] == 1 and list(after_first) == [""]
        # Each control run left one checkpoint (durability "exit"); all but the latest go.
        assert control_runs > 2 and report["checkpoints"]["deleted_checkpoints"] == control_runs - 1
        assert report["board"] == {"skipped": "prune_finished_older_than=None"}
        # Then the board: every finished task goes, summarised.
        report = await orchestra.perform_system_maintenance(prune_finished_older_than=0)
        state = orchestra.state()
        await orchestra.orchestrate_multiple_tasks(_tasks("b", 4))  # the thread keeps working
        await orchestra.wait_idle()
        later = orchestra.state()
    by_status = {
        s: sum(1 for t in before["tasks"].values() if t["status"] == s)
        for s in ("completed", "failed")
    }
    assert report["board"]["pruned_tasks"] == 12 and report["board"]["remaining_tasks"] == 0
    assert report["board"]["summary"]["by_status"] == {s: n for s, n in by_status.items() if n}
    assert state["tasks"] == {} and state["allocations"] == {}
    assert state["agents"] == agents_before
    assert state["metrics"]["pruned_tasks"] == 12
    assert state["metrics"]["pruned_completed"] == by_status["completed"]
    assert sorted(later["tasks"]) == ["b0", "b1", "b2", "b3"]


@pytest.mark.slow
async def test_maintenance_keeps_the_sqlite_file_bounded_over_1000_tasks(
    fixed_clock, capsys
) -> None:
    sizes: list[tuple[int, int, int]] = []
    async with Orchestra(clock=fixed_clock) as orchestra:  # SQLite in the test's data dir
        await _team(orchestra, per_type=2)
        for batch in range(5):
            await orchestra.orchestrate_multiple_tasks(_tasks(f"b{batch}-", 200))
            await orchestra.wait_idle()
            report = await orchestra.perform_system_maintenance(prune_finished_older_than=0)
            storage = report["storage"]
            sizes.append(
                (
                    200 * (batch + 1),
                    storage["before"]["checkpoints"],
                    storage["after"]["checkpoints"],
                )
            )
        metrics = orchestra.state()["metrics"]
        diagnosis = await orchestra.run_system_diagnostics()
    with capsys.disabled():
        print("\ntasks  checkpoints.sqlite before maintenance  after (bytes)")
        for row in sizes:
            print(f"{row[0]:5d}  {row[1]:34d}  {row[2]:13d}")
    assert metrics["pruned_tasks"] == 1000 and metrics["tasks_submitted"] == 1000
    first_after, last_after = sizes[0][2], sizes[-1][2]
    assert last_after <= 2 * first_after  # bounded: no growth with the number of tasks
    assert all(after * 20 < before for _, before, after in sizes)  # and far below the unpruned file
    assert diagnosis["storage"]["checkpoints"] == {"checkpoints": 1, "namespaces": 1, "writes": 0}


@pytest.mark.postgres
async def test_maintenance_on_postgresql_prunes_with_the_savers_keep_latest(
    postgres_url: str, tmp_path, fixed_clock
) -> None:
    import psycopg

    def rows() -> tuple[int, int]:
        with psycopg.connect(postgres_url) as conn:
            found = conn.execute(
                "SELECT count(*), count(DISTINCT checkpoint_ns) FROM checkpoints WHERE thread_id = 'pg-ops'"
            ).fetchone()
        assert found is not None
        return int(found[0]), int(found[1])

    config = {"persistence": {"database_url": postgres_url, "data_dir": str(tmp_path / "d")}}
    async with Orchestra(config, thread_id="pg-ops", clock=fixed_clock) as orchestra:
        await _team(orchestra)
        await orchestra.orchestrate_multiple_tasks(_tasks("a", 8))
        await orchestra.wait_idle()
        before, control_runs = rows(), orchestra.runtime_status()["control_runs"]
        report = await orchestra.perform_system_maintenance(prune_finished_older_than=0)
        after = rows()
        await orchestra.orchestrate_multiple_tasks(_tasks("b", 4))  # the thread keeps working
        await orchestra.wait_idle()
        tasks = orchestra.state()["tasks"]
    assert report["checkpoints"] == {
        "backend": "postgres",
        "supported": True,
        "method": "aprune(keep_latest)",
        "vacuumed": False,
    }
    assert report["board"]["pruned_tasks"] == 8
    assert before[0] == control_runs > 2 and after == (1, 1)  # only the latest root checkpoint is left
    assert sorted(tasks) == ["b0", "b1", "b2", "b3"]


@pytest.mark.parametrize("kind", ["threaded", "aiosqlite", "aiosqlite subclass"])
async def test_checkpoint_pruning_stats_and_vacuum_work_on_the_projects_and_langgraphs_sqlite_savers(
    tmp_path: Any, kind: str
) -> None:
    """The default backend's threaded saver, and a caller's own ``AsyncSqliteSaver`` (maintained
    through a connection of its own to the same file), and a subclass of it (a benchmark's timing
    saver was taken for an in-memory database)."""
    from contextlib import AsyncExitStack

    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    class MySaver(AsyncSqliteSaver):
        pass
    from langgraph.graph import START, StateGraph
    from typing_extensions import TypedDict

    from stellar_graph.ops.maintenance import (
        checkpoint_stats,
        prune_checkpoints,
        sqlite_file,
        vacuum_sqlite,
    )
    from stellar_graph.persistence import open_sqlite_saver

    class Count(TypedDict):
        n: int

    builder = StateGraph(Count)
    builder.add_node("add", lambda s: {"n": s["n"] + 1})
    builder.add_edge(START, "add")
    path = tmp_path / "checkpoints.sqlite"
    async with AsyncExitStack() as stack:
        if kind == "threaded":
            saver: Any = await stack.enter_async_context(open_sqlite_saver(path))
        else:
            cls = AsyncSqliteSaver if kind == "aiosqlite" else MySaver
            saver = await stack.enter_async_context(cls.from_conn_string(str(path)))
        app = builder.compile(checkpointer=saver)
        config = {"configurable": {"thread_id": "t"}}
        for _ in range(5):
            await app.ainvoke({"n": 0}, config)
        assert (await checkpoint_stats(saver, "t"))["checkpoints"] == 15  # input, loop, step x 5
        pruned = await prune_checkpoints(saver, "t")
        assert pruned["supported"] and pruned["kept_checkpoints"] == 1 and pruned["deleted_checkpoints"] == 14
        assert (await checkpoint_stats(saver, "t"))["checkpoints"] == 1
        assert (await app.aget_state(config)).values == {"n": 1}  # the latest state is intact
        assert await sqlite_file(saver) == path
        assert await vacuum_sqlite(saver) is True
        await app.ainvoke({"n": 4}, config)  # still usable after all that
        assert (await app.aget_state(config)).values == {"n": 5}
