"""A child process for the replica test: one of two processes driving one orchestra thread.

Usage: python replicas_worker.py CONFIG_JSON ROLE N_TASKS OUT_FILE

ROLE ``a`` registers the agents; both roles then submit N_TASKS tasks of their own (ids
``<role>-<i>``) one at a time, and stay until every task of both roles is finished (the other
process's control runs may start this process's tasks and the reverse). Writes the finished
records of all tasks to OUT_FILE as JSON.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

from stellar_graph import ATLAS, EDISON, LILITH, PYTHAGORAS, StellarOrchestra

SKILLS = ["ethics", "engineering", "risk_analysis", "statistics", "knowledge_synthesis"]
AGENTS = 10


async def main(config: dict[str, object], role: str, n: int, out: str) -> None:
    ids = [f"{r}-{i:03d}" for r in ("a", "b") for i in range(n)]
    async with StellarOrchestra(config, thread_id="replicas") as orchestra:
        if role == "a":
            for i, spec in enumerate((ATLAS, EDISON, LILITH, PYTHAGORAS, ATLAS) * 2):
                await orchestra.register_agent(spec.default_profile(f"{spec.name}-{i:03d}", capacity=2))
        deadline = time.monotonic() + 60
        while len(orchestra.registered_agents()) < AGENTS:  # the other process registers them
            assert time.monotonic() < deadline, "the agents were never registered"
            await asyncio.sleep(0.05)
            await orchestra.refresh_state()
        for i in range(n):
            await orchestra.orchestrate_task(
                {"id": f"{role}-{i:03d}", "description": f"Task {role} {i}", "required_skills": [SKILLS[i % len(SKILLS)]]}
            )
        deadline = time.monotonic() + 300
        while True:
            await orchestra.wait_idle()
            await orchestra.refresh_state()
            records = await orchestra.get_task_records(ids)
            if len(records) == len(ids) and all(r["task"].get("status") in {"completed", "failed", "refused"} for r in records.values()):
                break
            assert time.monotonic() < deadline, {t: r["task"].get("status") for t, r in records.items()}
            await asyncio.sleep(0.1)
        status = orchestra.runtime_status()
    text = json.dumps({"records": records, "task_runs_started": status["task_runs_started"]}, default=str)
    Path(out).write_text(text, encoding="utf-8")  # noqa: ASYNC240 (once, at the end)


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]))
