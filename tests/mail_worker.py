"""A child process for the message durability test.

Usage: python mail_worker.py DATA_DIR LOG_FILE {send|task:<id>|wait:<id>}
``send`` registers an agent, sends three acknowledged messages, prints READY and waits to be
killed. ``task:<id>`` runs one task for the agent and logs the messages its prompt contained.
``wait:<id>`` starts first, prints READY, and on a line on stdin waits until its bus has taken
over three messages of a stopped process (PostgreSQL), then runs the task like ``task:<id>``.
"""

from __future__ import annotations

import asyncio
import re
import sys

from stellar_graph import PYTHAGORAS, AgentAnswer, StellarOrchestra
from stellar_graph.testing import ScriptedChatModel, structured


def _append(path: str, lines: list[str]) -> None:
    with open(path, "a") as log:
        log.writelines(line + "\n" for line in lines)


def main() -> None:
    data_dir, log_file, mode = sys.argv[1], sys.argv[2], sys.argv[3]

    async def call(messages):
        seen = re.findall(r'"note": "(m\d)"', messages[-1].content)
        await asyncio.to_thread(_append, log_file, [f"seen {m}" for m in seen])
        return structured(AgentAnswer(result="ok", criteria_met=[], confidence=1.0))

    config = {"persistence": {"data_dir": data_dir}}

    async def run() -> None:
        async with StellarOrchestra(config, model=ScriptedChatModel(responses=[call] * 5), thread_id="mail") as orchestra:
            if mode == "send":
                await orchestra.register_agent(PYTHAGORAS.default_profile("pythagoras-001"))
                for i in range(3):
                    await orchestra.send_priority_message({
                        "sender": "ops", "recipients": ["pythagoras-001"], "message_type": "note",
                        "priority_level": 5 + i, "content": {"note": f"m{i}"}, "requires_ack": True,
                    })
                print("READY", flush=True)
                await asyncio.sleep(3600)
            task_id = mode.split(":", 1)[1]
            if mode.startswith("wait:"):
                print("READY", flush=True)
                await asyncio.to_thread(sys.stdin.readline)
                for _ in range(300):  # the bus looks for a dead process's messages every second
                    if orchestra.message_bus.metrics()["recovered"] >= 3:
                        break
                    await asyncio.sleep(0.1)
            await orchestra.orchestrate_task({"id": task_id, "description": "x", "required_skills": ["statistics"]})
            await orchestra.wait_idle()
            print("DONE", flush=True)

    asyncio.run(run())


if __name__ == "__main__":
    main()
