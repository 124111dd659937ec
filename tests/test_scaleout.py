"""Scale-out on the LangGraph API server (issue 13, must-show 3).

The orchestra served by ``langgraph dev --n-jobs-per-worker 4`` (``langgraph.json``) runs each
task as a background run of the task graph on the server's workers; the task runs post their
outcomes to the Store outbox and the control runs collect them in batches. 200 simulated tasks
must all complete, each on exactly one task-run thread, with far fewer control runs than tasks.
Throughput for 1 vs 4 jobs per worker is printed by ``tools/bench_server.py`` (not asserted).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

import bench_server
from stellar_graph.records import task_thread_id

pytestmark = pytest.mark.slow

TASKS = 200


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not bench_server.LANGGRAPH.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{bench_server.LANGGRAPH} is missing: install the `studio` extra")
        pytest.skip("langgraph-cli is not installed (the `studio` extra)")
    with bench_server.dev_server(4, log=tmp_path_factory.mktemp("dev") / "dev.log") as url:
        yield url


def test_200_tasks_complete_once_each_on_the_servers_workers(server: str) -> None:
    out = asyncio.run(bench_server.run_on_server(server, TASKS, deadline=300))
    values, thread = out["values"], out["thread_id"]
    board = values.get("tasks") or {}
    retired = int(values["metrics"].get("pruned_tasks", 0))
    assert retired + len(board) == TASKS
    # Every task finished (a simulated agent fails now and then: the ladder's call, not a loss).
    assert {t["status"] for t in board.values()} <= {"completed", "failed"}
    metrics = values["metrics"]
    assert metrics["tasks_completed"] + metrics["tasks_failed"] == TASKS
    assert metrics["tasks_completed"] > TASKS * 0.7
    # Each task ran once, on the thread its first run's handle names, visible as a thread.
    assert len(out["task_threads"]) == TASKS
    assert all(len(threads) == 1 for threads in out["task_threads"].values())
    assert {tid: threads[0] for tid, threads in out["task_threads"].items()} == {
        f"t{i:04d}": task_thread_id(thread, f"t{i:04d}", 1) for i in range(TASKS)
    }
    # Outcomes were applied once each and collected in batches, not one control run per task.
    assert values["metrics"].get("duplicate_outcomes", 0) == 0
    assert out["control_runs"] < TASKS / 2, out["control_runs"]
