"""Ten kill -9 trials at random (seeded) points of a multi-task run on SQLite, each followed by a
restart on the same thread: every task completes, every agent call finishes exactly once, and
every task's ``task_completed`` event reaches the handlers with one id (a redelivery after the
restart carries the same id, so a receiver keeps it once).

Agent calls are counted through a log the scripted model writes (``tests/trials_worker.py``): a
call cut off by the kill may start twice, but no task's call finishes twice.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("trials_worker.py")
TRIALS, SEED = 10, 2026
pytestmark = pytest.mark.slow


def _spawn(data_dir: Path, log: Path, mode: str, n_tasks: int, seed: int) -> subprocess.Popen[str]:
    env = {**os.environ, "STELLAR_GRAPH_DATA_DIR": str(data_dir)}
    return subprocess.Popen(
        [sys.executable, str(WORKER), str(data_dir), str(log), mode, str(n_tasks), str(seed)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def _starts(log: Path) -> int:
    return sum(line.startswith("start") for line in _lines(log))


def _wait_for_starts(proc: subprocess.Popen[str], log: Path, count: int) -> None:
    deadline = time.monotonic() + 60
    while _starts(log) < count and proc.poll() is None:
        assert time.monotonic() < deadline, "the worker never reached the kill point"
        time.sleep(0.005)


def _kill_at_random_point(
    proc: subprocess.Popen[str], log: Path, rng: random.Random, n_tasks: int
) -> str:
    """Kill after a random number of started calls, or a random delay after the first one."""
    if rng.random() < 0.5:
        count = rng.randint(1, n_tasks)
        _wait_for_starts(proc, log, count)
        point = f"after {count} started calls"
    else:
        delay = rng.uniform(0.1, 1.5)
        _wait_for_starts(proc, log, 1)  # the tasks are submitted (and checkpointed) by then
        time.sleep(delay)
        point = f"{delay:.2f} s after the first call"
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=10)
    return point


async def _saved_calls(data_dir: Path, n_tasks: int) -> set[str]:
    """Tasks whose agent answer was saved before the kill: in a checkpoint of their task run, or
    in the Store's saved model calls (``AGENT_CALLS_NAMESPACE``, written as the call returns)."""
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
    from langgraph.store.sqlite.aio import AsyncSqliteStore

    from stellar_graph.graphs import create_task_graph
    from stellar_graph.records import AGENT_CALLS_NAMESPACE, task_thread_id

    saved: set[str] = set()
    async with (
        AsyncSqliteSaver.from_conn_string(str(data_dir / "checkpoints.sqlite")) as saver,
        AsyncSqliteStore.from_conn_string(str(data_dir / "store.sqlite")) as store,
    ):
        app = create_task_graph().compile(checkpointer=saver)
        for i in range(n_tasks):
            task_id = f"trial-{i}"
            thread = task_thread_id("trials", task_id, 1)
            snapshot = await app.aget_state({"configurable": {"thread_id": thread}}, subgraphs=True)
            inner = [t.state for t in snapshot.tasks if t.state is not None]
            answered = [s for s in inner if getattr(s, "values", {}).get("answer")]
            if snapshot.values.get("report") or answered or await store.aget(AGENT_CALLS_NAMESPACE, thread):
                saved.add(task_id)
    return saved


def _trial(tmp: Path, trial: int, rng: random.Random) -> dict[str, object]:
    data_dir, log = tmp / f"data-{trial}", tmp / f"calls-{trial}.log"
    n_tasks = rng.randint(9, 12)
    first = _spawn(data_dir, log, "start", n_tasks, trial)
    point = _kill_at_random_point(first, log, rng, n_tasks)
    at_kill = Counter(_lines(log))
    started = {line.split()[1] for line in at_kill if line.startswith("start")}
    ended = {line.split()[1] for line in at_kill if line.startswith("end")}
    saved = asyncio.run(_saved_calls(data_dir, n_tasks))

    second = _spawn(data_dir, log, "resume", n_tasks, trial)
    out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    statuses = json.loads(out.strip().splitlines()[-1])
    ids = [f"trial-{i}" for i in range(n_tasks)]
    assert statuses == dict.fromkeys(ids, "completed"), (point, statuses)

    calls = Counter(_lines(log))
    # A call whose answer was checkpointed before the kill is never made again. A call that ended
    # in the last moments before the kill, before its answer was written, is made again: no
    # process can save a result at the very instant it arrives (the log shows `end` earlier).
    assert all(calls[f"start {t}"] == 1 for t in saved), (point, saved, calls)
    ends = {t: calls[f"end {t}"] for t in ids}
    unsaved_ends = ended - saved
    assert ends == {t: 2 if t in unsaved_ends else 1 for t in ids}, (point, ends, saved)
    # Only calls the kill cut off (or whose answers it lost) ran again.
    again = (started - ended) | unsaved_ends
    assert {t: calls[f"start {t}"] for t in ids} == {t: 2 if t in again else 1 for t in ids}, point
    events = [line.split()[1:] for line in _lines(log) if line.startswith("event")]
    ids_by_task = {t: {i for i, task in events if task == t} for t in ids}
    assert all(len(found) == 1 for found in ids_by_task.values()), (point, ids_by_task)
    cut_off = started - ended
    return {"point": point, "cut_off": len(cut_off), "finished_before_kill": len(saved), "lost_answers": len(unsaved_ends),
            "redelivered": len(events) - len(ids)}


def test_ten_kills_at_random_points_then_resume_complete_each_task_exactly_once(
    tmp_path: Path,
) -> None:
    rng = random.Random(SEED)
    results = [_trial(tmp_path, trial, rng) for trial in range(TRIALS)]
    # The kills landed mid-run: some cut calls off, some after work had finished.
    assert sum(r["cut_off"] for r in results) > 0, results
    assert sum(r["finished_before_kill"] for r in results) > 0, results
