"""Does ``perform_system_maintenance`` keep the SQLite checkpoint file bounded? 1,000 tasks, measured.

Two orchestras run the same workload on SQLite with the default durability (task runs checkpoint
once, at their end: decisions #23) and simulated (instant) agents, in batches of 100 tasks:

- **baseline**: no maintenance; the checkpoint file grows with every step (each checkpoint holds
  the whole board, and every agent call leaves subgraph checkpoints);
- **maintained**: ``perform_system_maintenance(prune_finished_older_than=0)`` after each batch:
  finished tasks leave the board (summarised), only the latest checkpoint is kept, the file is
  vacuumed.

The table shows the file (with its ``-wal``) after each batch: the baseline, the maintained one
just before maintenance, and just after it, with the ratio baseline / maintained-after.

Run: ``python tools/maintenance_demo.py [--tasks 1000] [--batch 100]``; ``--quick`` runs 200 tasks.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

try:
    import stellar_graph  # noqa: F401
except ImportError:  # not installed: run from the source tree
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from stellar_graph import REFERENCE_TEAM, StellarOrchestra
from stellar_graph.ops import OperationsMixin
from stellar_graph.ops.maintenance import file_sizes

Orchestra = (
    StellarOrchestra
    if issubclass(StellarOrchestra, OperationsMixin)
    else type("Orchestra", (OperationsMixin, StellarOrchestra), {})
)
SKILLS = ["ethics", "prototyping", "risk_analysis", "statistics"]


def _batch(number: int, size: int) -> list[dict[str, Any]]:
    return [
        {"id": f"b{number}-{i}", "description": "Do it", "required_skills": [SKILLS[i % 4]]}
        for i in range(size)
    ]


async def run(data_dir: Path, tasks: int, batch: int, maintain: bool) -> list[dict[str, Any]]:
    """Run the workload; one row per batch with file sizes (bytes) and seconds."""
    config = {"persistence": {"backend": "sqlite", "data_dir": str(data_dir)}}
    checkpoints = data_dir / "checkpoints.sqlite"
    rows = []
    async with Orchestra(config) as orchestra:
        for spec in REFERENCE_TEAM:
            await orchestra.register_agent(spec.default_profile(f"{spec.name}-001"))
        for number in range(tasks // batch):
            started = time.perf_counter()
            await orchestra.orchestrate_multiple_tasks(_batch(number, batch))
            await orchestra.wait_idle()
            row = {
                "tasks": (number + 1) * batch,
                "run_s": time.perf_counter() - started,
                "size": file_sizes({"c": checkpoints})["c"],
            }
            if maintain:
                report = await orchestra.perform_system_maintenance(prune_finished_older_than=0)
                row["after"] = report["storage"]["after"]["checkpoints"]
                row["maint_s"] = report["seconds"]
            rows.append(row)
    return rows


def _mib(n: float) -> str:
    return f"{n / 2**20:8.2f} MiB"


def table(baseline: list[dict[str, Any]], maintained: list[dict[str, Any]]) -> str:
    head = (
        f"{'tasks':>6} | {'baseline file':>13} | {'maintained: before':>18} | {'after':>12} | "
        f"{'baseline/after':>14} | {'run s (base/maint)':>18} | {'maint s':>7}"
    )
    lines = [head, "-" * len(head)]
    for base, kept in zip(baseline, maintained, strict=True):
        lines.append(
            f"{base['tasks']:>6} | {_mib(base['size']):>13} | {_mib(kept['size']):>18} | "
            f"{_mib(kept['after']):>12} | {base['size'] / kept['after']:>13.0f}x | "
            f"{base['run_s']:>8.2f} / {kept['run_s']:<7.2f} | {kept['maint_s']:>7.3f}"
        )
    return "\n".join(lines)


async def main(tasks: int, batch: int) -> None:
    with tempfile.TemporaryDirectory(prefix="stellar-maint-") as tmp:
        baseline = await run(Path(tmp) / "baseline", tasks, batch, maintain=False)
        maintained = await run(Path(tmp) / "maintained", tasks, batch, maintain=True)
    print(
        f"SQLite checkpoint file over {tasks} tasks (batches of {batch}, default durability, simulated agents)"
    )
    print(table(baseline, maintained))
    first, last = maintained[0]["after"], maintained[-1]["after"]
    print(
        f"\nafter maintenance: {_mib(first).strip()} at {maintained[0]['tasks']} tasks, "
        f"{_mib(last).strip()} at {maintained[-1]['tasks']} ({last / first:.2f}x); "
        f"baseline grew to {_mib(baseline[-1]['size']).strip()}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="200 tasks")
    args = parser.parse_args()
    asyncio.run(main(200 if args.quick else args.tasks, args.batch))
