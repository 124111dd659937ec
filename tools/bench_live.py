"""A live orchestra: does urgent work wait for unrelated agent work? (issue 13, must-show 1)

Scenario (SQLite persistence in a temporary directory, as a user runs it): 8 Edison agents of
capacity 1 are each busy with a task whose model call sleeps ``--busy`` seconds (60 by default);
one Pythagoras agent is idle. Then ``--critical`` critical tasks for the idle agent are submitted
one by one, and finally a quick task and a task that depends on it. The critical tasks arrive in
two ways, each its own run of the scenario:

- **back to back** (closed loop): each ``orchestrate_task`` is sent as soon as the previous one
  returned. Each critical task's quick model call (0.05 s) finishes while later ones arrive, so
  the process never rests: latency here is set by how many tasks per second one process
  sustains (each costs ~40 ms of CPU: two control runs and a task run), printed as
  ``tasks_per_second``;
- **paced** (open loop): one every ``--interval`` seconds (default 0.1), each sent at its time
  whether or not the previous one returned, its latency measured from that time (so a busy
  loop that sends late is counted against it).

Printed for each:

- allocation latency (submission -> ``orchestrate_task`` returned), p50 and p99;
- time to the agent's model call (submission -> the model received the task), p50 and p99;
- the dependent's start (its model call) after its dependency's model call returned.

The same scenario, smaller (``--baseline-busy`` seconds, ``--baseline-critical`` tasks), also runs
on this build and on a baseline build (``--baseline-ref``, default the commit before the live
design) checked out in a temporary git worktree, in a subprocess, so the ratios are measured in
the same run on the same machine. Targets (issue 13): allocation p99 <= 50 ms, model call p99 <=
100 ms, dependent start <= 100 ms.

Run: ``python tools/bench_live.py [--busy 60] [--critical 100] [--interval 0.1] [--no-baseline]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from stellar_graph import AgentAnswer, StellarOrchestra
from stellar_graph.testing import ScriptedChatModel, structured

ROOT = Path(__file__).resolve().parents[1]
BASELINE_REF = "eb49547"  # main before the live design: one run per wave of agent work
_TASK_ID = re.compile(r"Task (\S+) \(")


class Clock:
    """Model-call timestamps by task id (``perf_counter``), written by the fake model."""

    def __init__(self, busy: float, quick: float) -> None:
        self.busy, self.quick = busy, quick
        self.called: dict[str, float] = {}
        self.returned: dict[str, float] = {}

    async def call(self, messages: list[Any]) -> Any:
        task_id = _TASK_ID.search(str(messages[-1].content)).group(1)  # type: ignore[union-attr]
        self.called[task_id] = time.perf_counter()
        await asyncio.sleep(self.busy if task_id.startswith("busy") else self.quick)
        self.returned[task_id] = time.perf_counter()
        return structured(AgentAnswer(result=f"done {task_id}", criteria_met=[], confidence=1.0))


async def scenario(busy: float, critical: int, quick: float = 0.05, interval: float | None = None) -> dict[str, Any]:
    """Run the scenario once (``interval=None``: back to back); return the raw measurements (seconds)."""
    clock = Clock(busy, quick)
    model = ScriptedChatModel(responses=[clock.call] * (critical + 20))
    with tempfile.TemporaryDirectory() as data:
        orchestra = StellarOrchestra({"persistence": {"data_dir": data}}, model=model, thread_id="live")
        await orchestra.start_orchestration()
        try:
            return await _drive(orchestra, clock, critical, interval)
        finally:
            await orchestra.stop_intake(cancel_current=True)  # the busy agents' calls are not waited for
            await orchestra.stop_orchestration()


async def _drive(orchestra: StellarOrchestra, clock: Clock, critical: int, interval: float | None) -> dict[str, Any]:
    for i in range(8):
        await orchestra.register_agent({"agent_id": f"edison-00{i}", "agent_type": "EdisonAgent",
                                        "capabilities": ["engineering"], "capacity": 1})
    await orchestra.register_agent({"agent_id": "pythagoras-001", "agent_type": "PythagorasAgent",
                                    "capabilities": ["statistics"], "capacity": 10})
    await orchestra.orchestrate_multiple_tasks(
        [{"id": f"busy-{i}", "description": "Build", "required_skills": ["engineering"]} for i in range(8)]
    )
    await _until(lambda: sum(t.startswith("busy") for t in clock.called) == 8)
    submitted: dict[str, float] = {}
    allocation: list[float] = []

    async def send(task_id: str, at: float) -> None:
        await asyncio.sleep(max(0.0, at - time.perf_counter()))
        submitted[task_id] = at
        placed = await orchestra.orchestrate_task({"id": task_id, "description": "Compute now",
                                                    "priority": "critical", "required_skills": ["statistics"]})
        allocation.append(time.perf_counter() - at)
        assert placed.agent_id == "pythagoras-001", placed

    began = time.perf_counter()
    if interval is None:
        for i in range(critical):
            await send(f"urgent-{i}", time.perf_counter())
    else:
        await asyncio.gather(*(send(f"urgent-{i}", began + i * interval) for i in range(critical)))
    await _until(lambda: all(t in clock.returned for t in submitted))
    rate = critical / (max(clock.returned[t] for t in submitted) - began)
    to_call = [clock.called[t] - submitted[t] for t in submitted]
    await orchestra.orchestrate_multiple_tasks([
        {"id": "first", "description": "Compute", "required_skills": ["statistics"]},
        {"id": "then", "description": "Compute on", "required_skills": ["statistics"], "dependencies": ["first"]},
    ])
    await _until(lambda: "then" in clock.called)
    return {"allocation": allocation, "to_call": to_call, "dependent": clock.called["then"] - clock.returned["first"],
            "rate": rate}


async def _until(done: Any, seconds: float = 600.0) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        if time.monotonic() > deadline:
            raise TimeoutError("the scenario did not progress")
        await asyncio.sleep(0.001)


def summary(raw: dict[str, Any]) -> dict[str, float]:
    """p50/p99 in milliseconds."""
    def pct(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return 1000 * ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]

    return {
        "allocation_p50_ms": pct(raw["allocation"], 0.5), "allocation_p99_ms": pct(raw["allocation"], 0.99),
        "model_call_p50_ms": pct(raw["to_call"], 0.5), "model_call_p99_ms": pct(raw["to_call"], 0.99),
        "dependent_start_ms": 1000 * raw["dependent"],
        "allocation_mean_ms": 1000 * statistics.fmean(raw["allocation"]),
        "tasks_per_second": raw["rate"],
    }


def run_baseline(ref: str, busy: float, critical: int) -> dict[str, float] | str:
    """The same scenario on the baseline build (a temporary worktree, a subprocess)."""
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "baseline"
        made = subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), ref],
                              capture_output=True, text=True)
        if made.returncode != 0:
            return f"no baseline: {made.stderr.strip()}"
        try:
            env = {**os.environ, "PYTHONPATH": str(tree / "src")}
            out = subprocess.run([sys.executable, __file__, "--json", "--busy", str(busy), "--critical", str(critical)],
                                 capture_output=True, text=True, env=env, cwd=tmp, timeout=1800)
            if out.returncode != 0:
                return f"baseline failed: {out.stderr.strip()[-400:]}"
            return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], capture_output=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--busy", type=float, default=60.0, help="seconds each busy agent's call takes")
    parser.add_argument("--critical", type=int, default=100, help="critical tasks submitted one by one")
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between paced submissions")
    parser.add_argument("--baseline-ref", default=BASELINE_REF)
    parser.add_argument("--baseline-busy", type=float, default=6.0)
    parser.add_argument("--baseline-critical", type=int, default=3)
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--json", action="store_true", help="print one JSON line (used for the baseline)")
    args = parser.parse_args(argv)
    if args.json:
        print(json.dumps(summary(asyncio.run(scenario(args.busy, args.critical)))))
        return
    targets = {"allocation_p99_ms": 50, "model_call_p99_ms": 100, "dependent_start_ms": 100}
    for label, interval in (("back to back", None), (f"paced, one every {args.interval * 1000:.0f} ms", args.interval)):
        full = summary(asyncio.run(scenario(args.busy, args.critical, interval=interval)))
        print(f"\nthis build, {label}: {args.critical} critical tasks while 8 agents are busy for {args.busy:.0f} s")
        for key, value in full.items():
            target = targets.get(key)
            verdict = "" if target is None else f"   target <= {target} ms: {'met' if value <= target else 'MISSED'}"
            unit = "/s" if key == "tasks_per_second" else " ms"
            print(f"  {key:<20} {value:10.1f}{unit}{verdict}")
    if args.no_baseline:
        return
    small = summary(asyncio.run(scenario(args.baseline_busy, args.baseline_critical)))
    base = run_baseline(args.baseline_ref, args.baseline_busy, args.baseline_critical)
    print(f"\nside by side: {args.baseline_critical} critical tasks while 8 agents are busy for {args.baseline_busy:.0f} s")
    if isinstance(base, str):
        print(f"  {base}")
        return
    print(f"  {'metric':<20} {'this build':>12} {'baseline ' + args.baseline_ref:>18} {'ratio':>8}")
    for key, value in small.items():
        if key == "tasks_per_second" or key not in base:  # a rate of 3 tasks says nothing
            continue
        print(f"  {key:<20} {value:10.1f} ms {base[key]:15.1f} ms {base[key] / max(value, 1e-9):7.0f}x")


if __name__ == "__main__":
    main()
