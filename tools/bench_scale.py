"""Constant cost per task: many tasks submitted one at a time to one orchestra (issue 13, must-show 2).

10 simulated agents, SQLite persistence in a temporary directory (the default backend), no
maintenance. Each task is submitted with ``orchestrate_task`` and awaited (allocation); the agents'
work runs on in task runs. Printed per block of ``--block`` tasks: ms per task (submission to
allocation, plus the time to drain at the end of the block) and the process's CPU ms per task
(which CPU steal on a shared host does not inflate), the control thread's latest checkpoint
size, and the data directory's bytes per task so far. The first build measured 71 ms per task in
the first tenth and 449 ms in the last of 1,000, and an 11 GiB checkpoint file (issue 13).

Run: ``python tools/bench_scale.py [--tasks 10000] [--block 1000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import tempfile
import time
from pathlib import Path

from stellar_graph import ATLAS, EDISON, LILITH, PYTHAGORAS, StellarOrchestra

SKILLS = ["ethics", "engineering", "risk_analysis", "statistics", "knowledge_synthesis"]


def _sizes(data: Path, thread: str) -> tuple[int, int]:
    """(bytes of every file in the data directory, bytes of the control thread's latest checkpoint)."""
    total = sum(p.stat().st_size for p in data.iterdir() if p.is_file())
    with sqlite3.connect(data / "checkpoints.sqlite") as db:
        row = db.execute(
            "SELECT length(checkpoint) FROM checkpoints WHERE thread_id = ? AND checkpoint_ns = '' "
            "ORDER BY checkpoint_id DESC LIMIT 1", (thread,)
        ).fetchone()
    return total, int(row[0]) if row else 0


async def run(tasks: int, block: int) -> list[dict[str, float]]:
    rows: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        async with StellarOrchestra({"persistence": {"data_dir": str(data)}}, thread_id="scale") as orchestra:
            for spec in (ATLAS, EDISON, LILITH, PYTHAGORAS, ATLAS):
                for _ in range(2):
                    n = len(orchestra.registered_agents())
                    await orchestra.register_agent(spec.default_profile(f"{spec.name}-{n:03d}"))
            for start in range(0, tasks, block):
                began, cpu = time.perf_counter(), time.process_time()
                for i in range(start, min(start + block, tasks)):
                    await orchestra.orchestrate_task(
                        {"id": f"t{i}", "description": f"Task {i}", "required_skills": [SKILLS[i % len(SKILLS)]]}
                    )
                await orchestra.wait_idle()
                seconds, cpu_seconds = time.perf_counter() - began, time.process_time() - cpu
                total, checkpoint = _sizes(data, orchestra.thread_id)
                done = min(start + block, tasks)
                rows.append({"tasks": done, "ms_per_task": 1000 * seconds / (done - start),
                             "cpu_ms_per_task": 1000 * cpu_seconds / (done - start),
                             "checkpoint_bytes": checkpoint, "kib_per_task": total / done / 1024})
                print(f"{done:7d} tasks  {rows[-1]['ms_per_task']:8.1f} ms/task  ({rows[-1]['cpu_ms_per_task']:6.1f} CPU)  control checkpoint "
                      f"{checkpoint:8d} B  data dir {total / done / 1024:7.1f} KiB/task", flush=True)
            status = orchestra.runtime_status()
    print(f"control runs {status['control_runs']}, task runs {status['task_runs_started']}")
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--block", type=int, default=1_000)
    args = parser.parse_args(argv)
    rows = asyncio.run(run(args.tasks, args.block))
    first, last = rows[0], rows[-1]
    ratio = last["ms_per_task"] / first["ms_per_task"]
    cpu_ratio = last["cpu_ms_per_task"] / first["cpu_ms_per_task"]
    print(f"\nlast block / first block: {ratio:.2f}x ms per task (target <= 1.2x), {cpu_ratio:.2f}x CPU ms per task "
          f"(the process's CPU time: unaffected by a host that steals CPU); control checkpoint "
          f"{first['checkpoint_bytes']} B -> {last['checkpoint_bytes']} B; data dir "
          f"{last['kib_per_task']:.1f} KiB per task at {last['tasks']} tasks (target <= 64)")


if __name__ == "__main__":
    main()
