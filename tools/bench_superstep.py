"""How LangGraph's superstep barrier affects a slow agent, and what one task run per task does about it.

Scenario: two agents with one slot each. ``atlas-001`` gets one slow task (the only agent able to
do it); six quick tasks (and, in the second scenario, one task that depends on a quick one) can go
to either agent. Agent latency is simulated by a scripted model that sleeps.

Three runs, side by side:

- **stellar_graph**: the orchestra (a task run per task beside short control runs,
  list-scheduled slot queues);
- **plain waves**: a plain LangGraph graph that allocates one task per free agent, fans out with
  ``Send``, joins, and loops (what a straightforward orchestrator graph does, and what stellar_graph
  did at first);
- **ideal**: the quick tasks run back to back on the free agent, nothing waits for the slow one.

Run: ``python tools/bench_superstep.py [--slow 2.0] [--quick 0.05]``.
"""

from __future__ import annotations

import argparse
import asyncio
import operator
import re
import statistics
import time
from typing import Annotated, Any

from langgraph.graph import END, START, StateGraph
from langgraph.types import Send
from typing_extensions import TypedDict

from stellar_graph import AgentAnswer, StellarOrchestra
from stellar_graph.testing import ScriptedChatModel, structured

AGENTS = [
    {"agent_id": "atlas-001", "agent_type": "AtlasAgent", "capabilities": ["ethics", "engineering"], "capacity": 1},
    {"agent_id": "edison-001", "agent_type": "EdisonAgent", "capabilities": ["engineering"], "capacity": 1},
]


def workload(with_dependent: bool) -> list[dict[str, Any]]:
    tasks = [{"id": "slow", "description": "slow", "required_skills": ["ethics"], "estimated_duration_minutes": 120}]
    tasks += [
        {"id": f"q{i}", "description": "quick", "required_skills": ["engineering"], "estimated_duration_minutes": 5}
        for i in range(6)
    ]
    if with_dependent:
        tasks.append({"id": "after-q0", "description": "quick follow-up", "required_skills": ["engineering"],
                      "estimated_duration_minutes": 5, "dependencies": ["q0"]})
    return tasks


async def run_stellar(tasks: list[dict[str, Any]], slow: float, quick: float) -> dict[str, float]:
    done: dict[str, float] = {}
    t0 = time.perf_counter()

    async def call(messages: list[Any]) -> Any:
        task_id = re.search(r"Task (\S+) \(", messages[-1].content).group(1)  # type: ignore[union-attr]
        await asyncio.sleep(slow if task_id == "slow" else quick)
        done[task_id] = time.perf_counter() - t0
        return structured(AgentAnswer(result="ok", criteria_met=[], confidence=1.0))

    model = ScriptedChatModel(responses=[call] * (len(tasks) + 5))
    async with StellarOrchestra({"persistence": {"backend": "memory"}}, model=model) as orchestra:
        for agent in AGENTS:
            await orchestra.register_agent(agent)
        t0 = time.perf_counter()
        await orchestra.orchestrate_multiple_tasks(tasks)
        await orchestra.wait_idle()
    return done


class _WaveState(TypedDict, total=False):
    pending: list[dict[str, Any]]
    done: Annotated[list[str], operator.add]


def plain_wave_graph(slow: float, quick: float, clock: dict[str, float], t0: list[float]) -> Any:
    """One task per free agent per wave, Send fan-out, join, loop: the naive orchestrator graph."""

    def allocate(state: _WaveState) -> dict[str, Any]:
        return {}

    def dispatch(state: _WaveState) -> list[Send] | str:
        finished = set(state.get("done") or [])
        ready = [t for t in state["pending"] if t["id"] not in finished
                 and all(d in finished for d in t.get("dependencies", []))]
        sends, busy = [], set()
        for task in ready:
            agent = "atlas-001" if "ethics" in task["required_skills"] else next(
                (a for a in ("edison-001", "atlas-001") if a not in busy), None)
            if agent is None or agent in busy:
                continue
            busy.add(agent)
            sends.append(Send("work", {"task": task}))
        return sends or END

    async def work(packet: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(slow if packet["task"]["id"] == "slow" else quick)
        clock[packet["task"]["id"]] = time.perf_counter() - t0[0]
        return {"done": [packet["task"]["id"]]}

    builder = StateGraph(_WaveState)
    builder.add_node("allocate", allocate)
    builder.add_node("work", work)
    builder.add_edge(START, "allocate")
    builder.add_conditional_edges("allocate", dispatch, ["work", END])
    builder.add_edge("work", "allocate")
    return builder.compile()


async def run_plain(tasks: list[dict[str, Any]], slow: float, quick: float) -> dict[str, float]:
    clock: dict[str, float] = {}
    t0 = [time.perf_counter()]
    graph = plain_wave_graph(slow, quick, clock, t0)
    t0[0] = time.perf_counter()
    await graph.ainvoke({"pending": tasks, "done": []}, {"recursion_limit": 200})
    return clock


def ideal(tasks: list[dict[str, Any]], slow: float, quick: float) -> dict[str, float]:
    out = {"slow": slow}
    t = 0.0
    for task in tasks[1:]:
        t += quick
        out[task["id"]] = t
    return out


def summarise(name: str, finish: dict[str, float], tasks: list[dict[str, Any]]) -> dict[str, Any]:
    quick = [finish[t["id"]] for t in tasks if t["id"].startswith("q")]
    row = {"system": name, "quick p50 s": statistics.median(quick), "quick max s": max(quick),
           "slow s": finish.get("slow", float("nan"))}
    if "after-q0" in finish:
        row["dependent s"] = finish["after-q0"]
    return row


def print_table(title: str, rows: list[dict[str, Any]]) -> None:
    print(f"\n== {title} ==")
    keys = list(rows[0])
    base = rows[0]["quick max s"]
    print("  ".join(f"{k:>14}" for k in [*keys, "quick max vs stellar"]))
    for row in rows:
        cells = [f"{row[k]:>14.3f}" if isinstance(row[k], float) else f"{row[k]:>14}" for k in keys]
        print("  ".join([*cells, f"{row['quick max s'] / base:>19.2f}x"]))


async def main_async(slow: float, quick: float) -> None:
    for title, with_dep in (("unrelated quick tasks", False), ("plus a task that depends on a quick one", True)):
        tasks = workload(with_dep)
        rows = [
            summarise("stellar_graph", await run_stellar(tasks, slow, quick), tasks),
            summarise("plain waves", await run_plain(tasks, slow, quick), tasks),
            summarise("ideal", ideal(tasks, slow, quick), tasks),
        ]
        print_table(title, rows)
    print(
        "\nReading: with slot workers, quick tasks queued on the free agent do not wait for the slow one "
        "(plain waves: every wave waits for its slowest branch). A task that *depends* on a quick task is "
        "still released at the next superstep, i.e. after the slow task: the barrier remains for "
        "dependency release."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slow", type=float, default=2.0, help="seconds of the slow task")
    parser.add_argument("--quick", type=float, default=0.05, help="seconds of each quick task")
    args = parser.parse_args()
    asyncio.run(main_async(args.slow, args.quick))


if __name__ == "__main__":
    main()
