"""Where the time goes, per node: the profile ``bench_vs_peers`` prints next to its tables.

Each profiled system runs tasks one at a time through ``astream(stream_mode="tasks",
subgraphs=True)``; every node start and end is stamped with ``time.perf_counter()`` as the event
arrives, so a node's time is measured as LangGraph reports it (its own code plus, for nodes that
call an LLM or a subgraph, everything inside). "Outside nodes" is the rest of the wall time:
checkpoint writes, scheduling, channel updates and streaming. The checkpointer's own awaited
time is shown beside it (it overlaps "outside nodes", and partly the nodes, since LangGraph
writes a finished task's writes while its siblings run).
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from _peers_report import busy_time, render_table
from _peers_server import MockLLMServer
from _peers_systems import SYSTEMS, GraphRunner, Mark, RunContext
from _peers_workload import Workload

__all__ = ["node_times", "profile_systems"]

PROFILED_TASKS = 8


def _label(namespace: tuple[str, ...], node: str, agents: set[str]) -> str:
    parts = [segment.split(":", 1)[0] for segment in namespace] + [node]
    return " > ".join("agent" if p in agents else p for p in parts)


def node_times(marks: Sequence[Mark], agents: set[str]) -> dict[str, float]:
    """Seconds per node label (``"agent > work > act"``) in one run."""
    starts: dict[tuple[tuple[str, ...], str], float] = {}
    totals: dict[str, float] = defaultdict(float)
    for namespace, node, event_id, edge, stamp in marks:
        key = (namespace, event_id)
        if edge == "start":
            starts[key] = stamp
        elif key in starts:
            totals[_label(namespace, node, agents)] += stamp - starts.pop(key)
    return dict(totals)


async def _profile_one_system(
    server: MockLLMServer, workload: Workload, system: str, root: Path, durability: str
) -> tuple[str, dict[str, float]]:
    prefix = f"{system}.profile"
    ctx = RunContext.fresh(workload, server.base_url(prefix), root / prefix, durability)
    agents = {spec.name for spec in workload.team}
    tasks = workload.tasks[: PROFILED_TASKS + 1]
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(ctx.aclose)
        runner = await stack.enter_async_context(SYSTEMS[system](ctx))
        await runner.run_one(tasks[0])  # warm-up, not profiled
        runner.saver.reset()
        first_call = len(server.calls_of(prefix))
        totals: dict[str, float] = defaultdict(float)
        wall = 0.0
        for bt in tasks[1:]:
            marks, span = await runner.profile_one(bt)
            wall += span
            per_node = node_times(marks, agents)
            for label, seconds in per_node.items():
                totals[label] += seconds
        calls = server.calls_of(prefix)[first_call:]
        n = len(tasks) - 1
        rows = {label: seconds / n for label, seconds in totals.items()}
        rows["(wall of the run)"] = wall / n
        rows["(LLM work calls, server side)"] = (
            busy_time([c for c in calls if c.kind == "work"]) / n
        )
        if isinstance(runner, GraphRunner):  # the facade hides its graph's node events
            top = sum(seconds for label, seconds in totals.items() if " > " not in label) / n
            rows["(outside nodes: checkpoints, scheduling)"] = wall / n - top
        for op, (count, seconds) in sorted(runner.saver.timings.items()):
            rows[f"(checkpointer {op}: {count / n:.0f} calls)"] = seconds / n
        return runner.label, rows


async def profile_systems(
    server: MockLLMServer, workload: Workload, systems: Sequence[str], root: Path, durability: str
) -> str:
    """Profile each system on up to 8 tasks, one at a time; return the table as text."""
    columns = [await _profile_one_system(server, workload, s, root, durability) for s in systems]
    labels: list[str] = []
    for _, rows in columns:
        labels += [label for label in rows if label not in labels]
    labels.sort(key=lambda label: (label.startswith("("), label.split(" > ")[0], label))
    table = [
        [label] + [f"{rows[label] * 1e3:.2f}" if label in rows else "-" for _, rows in columns]
        for label in labels
    ]
    n = min(PROFILED_TASKS, len(workload.tasks) - 1)
    title = (
        f"== where the time goes, ms per task ({n} tasks one at a time, stream_mode='tasks', "
        f"durability={durability}; 'a > b' is node b inside node a) =="
    )
    return title + "\n" + render_table(["node", *(label for label, _ in columns)], table)
