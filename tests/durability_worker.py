"""A child process for the kill -9 test: runs (or resumes) a multi-task orchestra on SQLite.

Usage: python durability_worker.py DATA_DIR LOG_FILE {start|resume}

The agents' model is scripted: each call appends ``start <task>`` to LOG_FILE, sleeps, appends
``end <task>`` and answers. The parent kills this process in the middle of a wave.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys

from stellar_graph import PYTHAGORAS, AgentAnswer, StellarOrchestra
from stellar_graph.testing import ScriptedChatModel, structured

TASKS = [
    {
        "id": f"calc-{i}",
        "description": f"Compute quantity {i}",
        "required_skills": ["mathematics"],
        "success_criteria": ["exact value"],
    }
    for i in range(9)
]


def _append(path: str, line: str) -> None:
    with open(path, "a") as log:
        log.write(line + "\n")


def main() -> None:
    data_dir, log_file, mode = sys.argv[1], sys.argv[2], sys.argv[3]

    async def call(messages):
        task_id = re.search(r"Task (calc-\d+)", messages[-1].content).group(1)
        await asyncio.to_thread(_append, log_file, f"start {task_id}")
        await asyncio.sleep(0.4)
        await asyncio.to_thread(_append, log_file, f"end {task_id}")
        return structured(
            AgentAnswer(result=f"value of {task_id}", criteria_met=["exact value"], confidence=1.0)
        )

    model = ScriptedChatModel(responses=[call] * 100)
    config = {"persistence": {"backend": "sqlite", "data_dir": data_dir, "durability": "sync"}}

    async def run() -> None:
        async with StellarOrchestra(config, model=model, thread_id="durable") as orchestra:
            if mode == "start":
                for i in range(3):
                    await orchestra.register_agent(
                        PYTHAGORAS.default_profile(f"pythagoras-00{i}", capacity=1)
                    )
                await orchestra.orchestrate_multiple_tasks(TASKS)
            await orchestra.wait_idle()
            tasks = orchestra.state()["tasks"]
            print(json.dumps({t: r["status"] for t, r in tasks.items()}), flush=True)

    asyncio.run(run())


if __name__ == "__main__":
    main()
