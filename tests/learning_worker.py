"""A separate process for the learned-state persistence test: print what the Store holds, then learn.

Usage: ``python tests/learning_worker.py CONFIG_JSON TASKS THREAD``. Prints one JSON line: the
optimizer summary found at start (``before``), and after ``TASKS`` simulated tasks (``after``).
"""

from __future__ import annotations

import asyncio
import json
import sys

from stellar_graph import EDISON, StellarOrchestra


async def main(config: dict, tasks: int, thread: str) -> None:
    async with StellarOrchestra(config, thread_id=thread, seed=3) as orchestra:
        before = await orchestra.system_optimizer.summary()
        for i in range(2):
            await orchestra.register_agent(EDISON.default_profile(f"edison-00{i}", capacity=4))
        await orchestra.orchestrate_multiple_tasks(
            [{"id": f"{thread}-{i}", "description": f"Build part {i}", "required_skills": ["engineering"],
              "estimated_duration_minutes": 30} for i in range(tasks)]
        )
        await orchestra.wait_idle()
        after = await orchestra.system_optimizer.summary()
        metrics = orchestra.get_performance_metrics()["adaptation"]
    print(json.dumps({"before": before, "after": after, "metrics": metrics}))


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1]), int(sys.argv[2]), sys.argv[3]))
