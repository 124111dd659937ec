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
