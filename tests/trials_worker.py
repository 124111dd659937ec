"""A child process for the kill -9 trials: runs (or resumes) a multi-task orchestra on SQLite.

Usage: python trials_worker.py DATA_DIR LOG_FILE {start|resume} N_TASKS SEED

Three agents of capacity 1. The agents' model is scripted: each call appends ``start <task>`` to
LOG_FILE, sleeps a seeded 0.1-0.3 s (so the agents' calls do not end in lockstep), appends
``end <task>`` and answers; each ``task_completed`` event handed to a handler appends
``event <event id> <task>``. The parent kills this process at a random point and resumes it.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import sys

from stellar_graph import PYTHAGORAS, AgentAnswer, StellarOrchestra
from stellar_graph.testing import ScriptedChatModel, structured


def tasks(n: int) -> list[dict[str, object]]:
    """The run's tasks (the same in both processes)."""
    return [
        {
            "id": f"trial-{i}",
            "description": f"Compute quantity {i}",
            "required_skills": ["mathematics"],
            "success_criteria": ["exact value"],
        }
        for i in range(n)
    ]


def _append(path: str, line: str) -> None:
    with open(path, "a") as log:
        log.write(line + "\n")


def main() -> None:
    data_dir, log_file, mode, n_tasks, seed = (
        sys.argv[1],
        sys.argv[2],
        sys.argv[3],
        int(sys.argv[4]),
        int(sys.argv[5]),
    )

    async def call(messages):
        task_id = re.search(r"Task (trial-\d+)", messages[-1].content).group(1)
        await asyncio.to_thread(_append, log_file, f"start {task_id}")
        await asyncio.sleep(random.Random(f"{seed}:{task_id}").uniform(0.1, 0.3))
        await asyncio.to_thread(_append, log_file, f"end {task_id}")
        return structured(
            AgentAnswer(result=f"value of {task_id}", criteria_met=["exact value"], confidence=1.0)
        )

    model = ScriptedChatModel(responses=[call] * (4 * n_tasks))
    config = {"persistence": {"backend": "sqlite", "data_dir": data_dir}}  # the default durability

    async def run() -> None:
        async with StellarOrchestra(config, model=model, thread_id="trials") as orchestra:
            orchestra.on("task_completed", lambda e: _append(log_file, f"event {e['event_id']} {e['task_id']}"))
            if mode == "start":
                for i in range(3):
                    await orchestra.register_agent(
                        PYTHAGORAS.default_profile(f"pythagoras-00{i}", capacity=1)
                    )
                await orchestra.orchestrate_multiple_tasks(tasks(n_tasks))
            await orchestra.wait_idle()
            board = orchestra.state()["tasks"]
            print(json.dumps({t: r["status"] for t, r in board.items()}), flush=True)

    asyncio.run(run())


if __name__ == "__main__":
    main()
