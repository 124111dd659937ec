"""SQLite persistence: the orchestra's state survives a restart; per-agent outcomes go to the Store."""

from __future__ import annotations

from pathlib import Path

from stellar_graph import EDISON, StellarOrchestra
from stellar_graph.nodes.optimizer import AGENT_STATS_NAMESPACE
from stellar_graph.persistence import open_persistence, sqlite_paths

TASKS = [{"id": f"build-{i}", "description": f"Build part {i}", "required_skills": ["engineering"]} for i in range(3)]


async def test_state_and_store_survive_a_restart(tmp_path: Path, fixed_clock) -> None:
    config = {"persistence": {"data_dir": str(tmp_path)}}
    async with StellarOrchestra(config, thread_id="factory", clock=fixed_clock) as first:
        await first.register_agent(EDISON.default_profile("edison-001", capacity=3))
        await first.orchestrate_multiple_tasks(TASKS)
        await first.wait_idle()
        finished = {t: r["status"] for t, r in first.state()["tasks"].items()}
    assert sqlite_paths(first.config.persistence)[0] == tmp_path / "checkpoints.sqlite"

    async with StellarOrchestra(config, thread_id="factory", clock=fixed_clock) as second:
        assert set(second.registered_agents()) == {"edison-001"}
        assert {t: r["status"] for t, r in second.state()["tasks"].items()} == finished
        await second.orchestrate_task({"id": "build-3", "description": "One more", "required_skills": ["engineering"]})
        await second.wait_idle()
        assert second.get_performance_metrics()["tasks"]["submitted"] == 4

    async with open_persistence(second.config.persistence) as (_, store):
        stats = (await store.aget(AGENT_STATS_NAMESPACE, "edison-001")).value
    assert stats["completed"] + stats["failed"] == 4
    assert stats["minutes"] > 0


async def test_the_sqlite_store_runs_each_batch_in_one_transaction_on_its_own_thread(tmp_path: Path) -> None:
    import threading

    from langgraph.store.base import GetOp, PutOp

    from stellar_graph.persistence import open_sqlite_store

    async with open_sqlite_store(tmp_path / "store.sqlite") as store:
        threads: list[str] = []
        batch = store.batch
        store.batch = lambda ops: (threads.append(threading.current_thread().name), batch(ops))[1]  # type: ignore[method-assign]
        await store.abatch([PutOp(("ns",), "a", {"v": 1}), PutOp(("ns",), "b", {"v": 2})])
        a, b, missing = await store.abatch([GetOp(("ns",), "a"), GetOp(("ns",), "b"), GetOp(("ns",), "c")])
        assert (a.value, b.value, missing) == ({"v": 1}, {"v": 2}, None)
        await store.adelete(("ns",), "a")
        assert [i.key for i in await store.asearch(("ns",))] == ["b"]
        assert len(threads) == 4 and all(t.startswith("stellar-graph-store") for t in threads)
        journal = await store.arun(lambda: store.conn.execute("PRAGMA journal_mode").fetchone()[0])
        synchronous = await store.arun(lambda: store.conn.execute("PRAGMA synchronous").fetchone()[0])
    assert (journal, synchronous) == ("wal", 1)  # WAL, NORMAL: safe against a killed process


async def test_a_running_orchestra_has_frozen_its_start_up_objects_out_of_the_collector(tmp_path: Path) -> None:
    import gc

    async with StellarOrchestra({"persistence": {"data_dir": str(tmp_path)}}, thread_id="gc"):
        assert gc.get_freeze_count() > 10_000  # a full collection no longer walks the libraries


async def test_the_default_sqlite_backend_gets_the_file_lease_and_reports_itself_as_sqlite(tmp_path: Path) -> None:
    from stellar_graph.config import PersistenceConfig
    from stellar_graph.persistence import backend_of
    from stellar_graph.runtime.lease import FileLease, open_lease

    async with open_persistence(PersistenceConfig(data_dir=str(tmp_path))) as (saver, store):
        assert (backend_of(saver), backend_of(store)) == ("sqlite", "sqlite")
        lease = await open_lease(saver, data_dir=tmp_path)
        try:
            assert isinstance(lease, FileLease)  # two processes on one data dir exclude each other
        finally:
            await lease.aclose()
