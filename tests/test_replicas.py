"""Two processes drive one orchestra thread on one database (issue 13, must-show 4).

Each process runs a :class:`StellarOrchestra` on the same thread: one registers 10 agents of
capacity 2, both submit 200 tasks one at a time, and both stay until all 400 are finished. The
control lease (PostgreSQL advisory locks; POSIX locks on the SQLite data directory) serialises
their control runs, so each run starts from the last one's checkpoint; each process's message bus
holds a slot of the orchestra's bus in the same database or data directory. Checked from the records:
every task completed, exactly one task run each, and no agent ever ran more tasks at once than
its capacity (a sweep over each task's dispatch time and its run's finish time).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

WORKER = Path(__file__).with_name("replicas_worker.py")
TASKS = 200
CAPACITY = 2


def _run_replicas(config: dict[str, Any], tmp_path: Path) -> list[dict[str, Any]]:
    procs, outs, logs = [], [], []
    for role in ("a", "b"):
        out, log = tmp_path / f"{role}.json", tmp_path / f"{role}.log"
        shared = {**config, "persistence": {**config["persistence"], "data_dir": str(tmp_path / "data")}}
        cmd = [sys.executable, str(WORKER), json.dumps(shared), role, str(TASKS), str(out)]
        with log.open("w") as sink:  # a file, not a pipe: a full pipe would stall a process holding the lease
            procs.append(subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT))
        outs.append(out)
        logs.append(log)
    try:
        for proc, log in zip(procs, logs, strict=True):
            assert proc.wait(timeout=400) == 0, log.read_text()[-4000:]
    finally:
        for proc in procs:
            proc.kill()
    return [json.loads(out.read_text(encoding="utf-8")) for out in outs]


def _max_concurrency(intervals: list[tuple[str, str]]) -> int:
    points = sorted([(s, 1) for s, _ in intervals] + [(f, -1) for _, f in intervals], key=lambda p: (p[0], p[1]))
    level = peak = 0
    for _, step in points:
        level += step
        peak = max(peak, level)
    return peak


def _check(results: list[dict[str, Any]]) -> None:
    records = results[0]["records"]
    assert results[1]["records"] == records  # both processes see the same outcome
    assert len(records) == 2 * TASKS  # none lost
    # Every task finished (simulated agents fail sometimes: the ladder's decision, not a loss).
    assert {r["task"]["status"] for r in records.values()} <= {"completed", "failed"}
    assert sum(r["task"]["status"] == "completed" for r in records.values()) > TASKS
    # Each task run executed once, in one of the two processes (both took a share).
    assert sum(r["task_runs_started"] for r in results) == sum(r["task"]["runs"] for r in records.values())
    assert all(r["task_runs_started"] > TASKS / 4 for r in results)
    # No slot double-booked: from dispatch to the run's end, an agent never held more than its capacity.
    by_agent: dict[str, list[tuple[str, str]]] = {}
    for record in records.values():
        task = record["task"]
        by_agent.setdefault(task["agent_id"], []).append((task["started_at"], task["report"]["finished_at"]))
    assert len(by_agent) == 10
    peaks = [_max_concurrency(v) for v in by_agent.values()]
    assert max(peaks) <= CAPACITY, peaks  # never above capacity (whether it is reached depends on timing)


def test_two_processes_on_one_postgres_thread_lose_nothing_and_never_double_book(
    postgres_url: str, tmp_path: Path
) -> None:
    config = {"persistence": {"database_url": postgres_url}, "llm": {"simulated_seconds": 0.2}}
    _check(_run_replicas(config, tmp_path))
    # One data directory for both, and nothing written to it: checkpoints, store, leases and
    # both processes' message buses (one slot each) are in the database.
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").rglob("*"))


def test_two_processes_on_one_sqlite_data_directory_lose_nothing_and_never_double_book(tmp_path: Path) -> None:
    """The default backend: the file lease serialises the control runs, and each process's
    message bus takes a slot of the shared ``bus.sqlite``."""
    config = {"persistence": {"backend": "sqlite"}, "llm": {"simulated_seconds": 0.2}}
    _check(_run_replicas(config, tmp_path))
    assert {p.name for p in (tmp_path / "data").glob("bus.sqlite.lock*")} == {"bus.sqlite.lock", "bus.sqlite.lock.1"}


def test_a_file_lease_excludes_another_process_until_it_dies(tmp_path: Path) -> None:
    """SQLite's lease (POSIX locks): a claim held by a live process is refused; once that
    process is killed, the kernel drops its locks and the claim succeeds."""
    import asyncio

    from stellar_graph.runtime.lease import FileLease

    holder = (
        "import asyncio, sys, time\n"
        "from pathlib import Path\n"
        "from stellar_graph.runtime.lease import FileLease\n"
        "lease = FileLease(Path(sys.argv[1]))\n"
        "assert asyncio.run(lease.claim('task-thread'))\n"
        "print('held', flush=True)\n"
        "time.sleep(60)\n"
    )
    path = tmp_path / "runs.lock"
    proc = subprocess.Popen([sys.executable, "-c", holder, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        lease = FileLease(path)
        assert asyncio.run(lease.claim("task-thread")) is False
        assert asyncio.run(lease.claim("another-thread")) is True
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    assert asyncio.run(lease.claim("task-thread")) is True
    asyncio.run(lease.aclose())


def test_two_serve_replicas_on_one_sqlite_data_directory_lose_nothing_and_never_double_book(tmp_path: Path) -> None:
    """`stellar-graph serve` twice on one data directory, one thread: requests alternate between
    the replicas, 40 at once; every task is answered finished, and no agent ran more tasks at once
    than its capacity (the replicas' control runs take turns through the same lease)."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    from stellar_graph import ATLAS, EDISON, LILITH, PYTHAGORAS
    from tests.servers import safe_env, stellar_server

    env = safe_env(STELLAR_GRAPH_LLM__SIMULATED_SECONDS="0.2")
    args = ["serve", "--data-dir", str(tmp_path / "data"), "--thread", "shared"]
    skills = ["knowledge_synthesis", "engineering", "ethics", "statistics"]
    with (
        stellar_server(args, log=tmp_path / "a.log", env=env) as a,
        stellar_server(args, log=tmp_path / "b.log", env=env) as b,
    ):
        agents = [spec.default_profile(f"{spec.name}-001", capacity=CAPACITY) for spec in (ATLAS, EDISON, LILITH, PYTHAGORAS)]
        registered = httpx.post(f"{a}/orchestra/invoke", json={"input": {"register_agents": agents}}, timeout=60)
        assert registered.status_code == 200, registered.text

        def submit(i: int) -> dict[str, Any]:
            task = {"id": f"t{i:02d}", "description": f"Task {i}", "required_skills": [skills[i % 4]]}
            reply = httpx.post(f"{(a, b)[i % 2]}/orchestra/invoke", json={"input": {"submit_tasks": [task]}}, timeout=180)
            assert reply.status_code == 200, reply.text
            return dict(reply.json()["output"]["tasks"][task["id"]])

        with ThreadPoolExecutor(max_workers=40) as pool:
            records = list(pool.map(submit, range(40)))
    assert {r["status"] for r in records} <= {"completed", "failed"}
    assert sum(r["status"] == "completed" for r in records) > 20
    by_agent: dict[str, list[tuple[str, str]]] = {}
    for task in records:
        by_agent.setdefault(task["agent_id"], []).append((task["started_at"], task["report"]["finished_at"]))
    assert max(_max_concurrency(v) for v in by_agent.values()) <= CAPACITY
