"""Kill -9 in the middle of a multi-task run on SQLite, restart on the same thread: every task
completes exactly once (agent calls counted through a log the scripted model writes)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

WORKER = Path(__file__).with_name("durability_worker.py")
pytestmark = pytest.mark.slow


def _spawn(data_dir: Path, log: Path, mode: str) -> subprocess.Popen[str]:
    env = {**os.environ, "STELLAR_GRAPH_DATA_DIR": str(data_dir)}
    return subprocess.Popen(
        [sys.executable, str(WORKER), str(data_dir), str(log), mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_kill_minus_nine_mid_wave_then_resume_completes_each_task_once(tmp_path: Path) -> None:
    data_dir, log = tmp_path / "data", tmp_path / "calls.log"
    first = _spawn(data_dir, log, "start")
    # 3 agents of capacity 1, 9 tasks: 3 waves. Kill when the second wave's calls have started.
    deadline = time.monotonic() + 60
    while sum(line.startswith("start") for line in _lines(log)) < 6:
        assert first.poll() is None, first.communicate()
        assert time.monotonic() < deadline, "the worker did not reach the second wave"
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=10)
    before = Counter(line for line in _lines(log))
    assert sum(v for k, v in before.items() if k.startswith("end")) == 3  # only wave 1 had finished

    second = _spawn(data_dir, log, "resume")
    out, err = second.communicate(timeout=60)
    assert second.returncode == 0, err
    statuses = json.loads(out.strip().splitlines()[-1])
    assert statuses == {f"calc-{i}": "completed" for i in range(9)}

    calls = Counter(_lines(log))
    ends = {t: calls[f"end {t}"] for t in statuses}
    assert ends == dict.fromkeys(statuses, 1), (
        ends
    )  # every call that finished: exactly once per task
    interrupted = {t for t in statuses if calls[f"start {t}"] == 2}
    assert len(interrupted) == 3  # the wave in flight at the kill re-ran, nothing else did
    assert all(calls[f"start {t}"] == 1 for t in statuses if t not in interrupted)
