"""PostgreSQL replaces SQLite everywhere once a database URL is configured: the facade (state and
Store across two instances), the CLI, the HTTP server, and the kill -9 resume.

Runs against the private cluster of ``tests/pg.py`` (a fresh database per test).
"""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from stellar_graph import EDISON, StellarOrchestra
from stellar_graph.cli import main
from stellar_graph.memory import load_predictor
from stellar_graph.nodes.optimizer import AGENT_STATS_NAMESPACE
from stellar_graph.persistence import DATABASE_URL_ENV, open_persistence
from tests.test_durability import kill_mid_run_then_resume

pytestmark = pytest.mark.postgres

TASKS = [
    {"id": f"build-{i}", "description": f"Build part {i}", "required_skills": ["engineering"]}
    for i in range(3)
]


def _checkpoints(url: str, thread_id: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM checkpoints WHERE thread_id = %s", (thread_id,)
        ).fetchone()
    return int(row[0]) if row else 0


async def test_facade_state_and_store_persist_across_instances(
    postgres_url: str, tmp_path: Path, fixed_clock
) -> None:
    config = {"persistence": {"database_url": postgres_url, "data_dir": str(tmp_path / "d")}}
    async with StellarOrchestra(config, thread_id="factory", clock=fixed_clock) as first:
        await first.register_agent(EDISON.default_profile("edison-001", capacity=3))
        await first.orchestrate_multiple_tasks(TASKS)
        await first.wait_idle()
        finished = {t: r["status"] for t, r in first.state()["tasks"].items()}
    assert finished == {t["id"]: "completed" for t in TASKS}

    async with StellarOrchestra(config, thread_id="factory", clock=fixed_clock) as second:
        assert set(second.registered_agents()) == {"edison-001"}
        assert {t: r["status"] for t, r in second.state()["tasks"].items()} == finished
        await second.orchestrate_task(
            {"id": "build-3", "description": "One more", "required_skills": ["engineering"]}
        )
        await second.wait_idle()
        assert second.get_performance_metrics()["tasks"]["submitted"] == 4

    async with open_persistence(second.config.persistence) as (saver, store):
        assert type(saver).__name__ == "AsyncPostgresSaver"
        assert type(store).__name__ == "AsyncPostgresStore"
        stats = (await store.aget(AGENT_STATS_NAMESPACE, "edison-001")).value
        predictor = await load_predictor(store)
    assert stats["completed"] + stats["failed"] == 4
    # Learned completion-time calibration persisted in PostgreSQL across both instances.
    assert predictor.coverage_report()["overall"]["n"] == 4
    assert _checkpoints(postgres_url, "factory") > 0
    # Checkpoints, Store and the message bus went to PostgreSQL: no local database file.
    assert not list((tmp_path / "d").glob("*.sqlite*"))


def test_cli_run_uses_postgres_from_the_environment(
    postgres_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(DATABASE_URL_ENV, postgres_url)
    data_dir, report = tmp_path / "d", tmp_path / "report.json"
    code = main(
        [
            "run",
            "vegapunk",
            "--data-dir",
            str(data_dir),
            "--report",
            str(report),
            "--thread",
            "cli-pg",
            "--quiet",
        ]
    )
    assert code == 0, capsys.readouterr().err
    statuses = {t: r["status"] for t, r in json.loads(report.read_text())["tasks"].items()}
    assert statuses["coral-survey"] == "refused"
    assert len(statuses) == 11
    assert _checkpoints(postgres_url, "cli-pg") > 0
    with psycopg.connect(postgres_url) as conn:
        (stored,) = conn.execute("SELECT count(*) FROM store").fetchone() or (0,)
        (agents,) = conn.execute("SELECT count(*) FROM stellar_bus_agents WHERE bus = 'cli-pg'").fetchone() or (0,)
    assert stored > 0  # the optimizer's per-agent outcomes went to the PostgreSQL Store
    assert agents == 5  # the agents' mailboxes are addressable from the database
    assert not list(data_dir.rglob("*.sqlite*"))  # no SQLite file: checkpoints, store and bus


def test_server_keeps_thread_state_in_postgres_across_restarts(
    postgres_url: str, tmp_path: Path
) -> None:
    from fastapi.testclient import TestClient

    from stellar_graph.serving import create_app

    config = {"persistence": {"database_url": postgres_url, "data_dir": str(tmp_path / "d")}}
    headers = {"X-Thread-Id": "served"}
    body = {
        "register_agents": [EDISON.default_profile("edison-001", capacity=3)],
        "submit_tasks": TASKS,
    }
    with TestClient(create_app(config)) as client:
        assert client.get("/healthz").json()["checkpointer"] == "postgres"
        first = client.post("/orchestra/invoke", json={"input": body}, headers=headers)
        assert first.status_code == 200, first.text
        board = {t: r["status"] for t, r in first.json()["output"]["tasks"].items()}
    assert board == {t["id"]: "completed" for t in TASKS}
    with TestClient(create_app(config)) as client:  # a restarted server
        again = client.post("/orchestra/invoke", json={"input": {}}, headers=headers)
        assert {t: r["status"] for t, r in again.json()["output"]["tasks"].items()} == board
    assert _checkpoints(postgres_url, "served") > 0
    assert not (tmp_path / "d").exists()


@pytest.mark.slow
def test_kill_minus_nine_then_resume_on_postgres_runs_each_task_once(
    postgres_url: str, tmp_path: Path
) -> None:
    # The same trial as the SQLite one, with the database URL switching the backend.
    kill_mid_run_then_resume(tmp_path, {DATABASE_URL_ENV: postgres_url})
    assert _checkpoints(postgres_url, "durable") > 0
    assert not (tmp_path / "data" / "checkpoints.sqlite").exists()


async def test_the_orchestra_goes_on_after_the_server_drops_its_connections(
    postgres_url: str, tmp_path: Path, fixed_clock
) -> None:
    """A PostgreSQL restart, failover or idle timeout ends every session: the checkpointer's and
    Store's pool, the lease and the message bus reconnect on their next use; the claims and the
    bus's slot are taken again."""
    from stellar_graph import PYTHAGORAS, AgentAnswer
    from stellar_graph.testing import ScriptedChatModel, structured

    answer = structured(AgentAnswer(result="ok", criteria_met=[], confidence=1.0))
    model = ScriptedChatModel(responses=[answer] * 4)
    config = {"persistence": {"database_url": postgres_url, "data_dir": str(tmp_path / "d")}}
    name = postgres_url.rsplit("/", 1)[1]

    def drop_sessions() -> int:
        with psycopg.connect(postgres_url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as admin:
            row = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            ).fetchone()
        return int(row[0]) if row else 0

    async with StellarOrchestra(config, model=model, thread_id="dropped", clock=fixed_clock) as orchestra:
        await orchestra.register_agent(PYTHAGORAS.default_profile("pythagoras-001"))
        first = await orchestra.orchestrate_task({"id": "t0", "description": "Fit", "required_skills": ["statistics"]})
        assert (await orchestra.monitor_task_execution(first.allocation_id))["status"] == "completed"

        assert drop_sessions() >= 4  # pool, lease (control and claims), bus
        note = await orchestra.send_priority_message({
            "sender": "ops", "recipients": ["pythagoras-001"], "message_type": "note", "content": {"n": 1},
        })
        for i in (1, 2, 3):
            placed = await orchestra.orchestrate_task(
                {"id": f"t{i}", "description": "Fit", "required_skills": ["statistics"]}
            )
            assert (await orchestra.monitor_task_execution(placed.allocation_id))["status"] == "completed"
        assert note in orchestra.state()["delivered_messages"]
        assert orchestra.message_bus.receipts(note)["pythagoras-001"] in {"delivered", "acked"}
    model.assert_complete()


async def test_the_lease_takes_its_claims_again_on_a_new_session(postgres_url: str) -> None:
    from stellar_graph.runtime.lease import PostgresLease

    lease = await PostgresLease.connect(postgres_url)
    try:
        assert await lease.claim("run-a")
        old = await (await lease._claims.execute("SELECT pg_backend_pid()")).fetchone()
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (old[0],))
        assert await lease.claim("run-b")  # reconnects, takes run-a again, then run-b
        new = await (await lease._claims.execute("SELECT pg_backend_pid()")).fetchone()
        assert new[0] != old[0]
        other = await PostgresLease.connect(postgres_url)
        try:
            assert not await other.claim("run-a") and not await other.claim("run-b")
            await lease.release("run-a")
            assert await other.claim("run-a")
        finally:
            await other.aclose()
        async with lease.control("orchestra"):  # its control connection was not dropped: still works
            pass
    finally:
        await lease.aclose()
