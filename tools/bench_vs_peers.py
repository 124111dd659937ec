"""stellar_graph side by side with peer orchestrators on one workload and one mocked LLM.

The same tasks (40 by default, round-robin over the four reference agents; each needs a skill
only one agent holds) and the same canned agent answers go through, in one run:

* stellar_graph: the ``StellarOrchestra`` facade and the orchestra graph invoked directly;
* langgraph-supervisor's ``create_supervisor`` (plain, with ``forward_message``, and for contrast
  with all tasks in one thread), whose supervisor LLM is scripted to route every task to the
  right agent: measured at its best;
* langgraph-swarm's ``create_swarm`` (Atlas starts; it hands off when the task is not its own);
* a plain LangGraph graph routing by skill straight to the owner's LLM: the lower limit;
* stellar_graph's shape alone (``stellar-shape``): its runs and node paths per task with no-op
  nodes around the same LLM call as the plain graph, so the report can say how much of
  stellar_graph's overhead LangGraph itself takes for that design, and how much is its own code.

All LLM traffic goes to one local OpenAI-compatible server (``_peers_server``) that counts the
calls (routing vs work), sleeps a fixed latency per call, and keeps the bodies, whose tokens are
counted with tiktoken after the run (``_peers_report`` says exactly what is counted). Every
system uses an ``AsyncSqliteSaver`` in its own file and the same durability mode. Each system is
warmed up on two tasks first; repetitions interleave the systems and the median is shown.

It prints a sequential table (one task at a time), a concurrent one, issue 9's claims with
PASS/FAIL, and, when the overhead claim fails (or with ``--profile``), where the time goes per
node. Method and latest figures: ``BENCHMARKS.md``.

Usage:
    python tools/bench_vs_peers.py [--quick] [--tasks N] [--latency-ms MS] [--repeat R]
        [--durability {sync,async,exit}] [--db-dir DIR] [--answer-sentences N]
        [--systems a,b,...] [--no-concurrent] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import platform
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
for _path in (_ROOT / "src", _ROOT / "tools"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from _peers_profile import profile_systems  # noqa: E402
from _peers_report import RunMetrics, measure_run, median_run, render_table, spread  # noqa: E402
from _peers_server import MockLLMServer  # noqa: E402
from _peers_systems import SYSTEMS, RunContext  # noqa: E402
from _peers_workload import Workload, make_workload  # noqa: E402
from stellar_graph.tokens import ensure_offline_encodings  # noqa: E402

__all__ = ["BenchResult", "Claim", "main", "run_benchmark"]

STELLAR, BASELINE, SUPERVISOR, SHAPE = "stellar", "plain", "supervisor", "stellar-shape"
DEFAULT_SYSTEMS = (
    "stellar",
    "stellar-graph",
    "supervisor",
    "supervisor-fwd",
    "supervisor-shared",
    "swarm",
    "plain",
    "stellar-shape",
)
SHARED_THREAD = {"supervisor-shared"}  # one thread cannot take concurrent runs: sequential only
CONCURRENCY = 12  # stellar_graph's capacity here: 4 agents x 3 concurrent tasks (the default)
WARMUP_TASKS = 2


@dataclass(frozen=True)
class Claim:
    """One must-show statement of issue 9 and whether this run shows it."""

    text: str
    value: str
    ok: bool


@dataclass
class BenchResult:
    """All runs of one benchmark invocation (counts are identical across repetitions)."""

    options: argparse.Namespace
    workload: Workload
    runs: dict[tuple[str, str], list[RunMetrics]] = field(default_factory=dict)
    server_errors: list[str] = field(default_factory=list)
    profile: str = ""

    def median(self, system: str, mode: str = "seq") -> RunMetrics:
        """The median repetition of one system in one mode."""
        return median_run(self.runs[(system, mode)])

    def claims(self) -> list[Claim]:
        """Issue 9's must-show claims evaluated on the sequential runs."""
        sg, n = self.median(STELLAR), len(self.workload.tasks)
        found = [
            Claim(
                "stellar_graph makes zero routing LLM calls",
                f"{sg.routing_calls} routing calls",
                sg.routing_calls == 0,
            ),
            Claim(
                "every task routed to the skill-matching agent (and answered)",
                f"{sg.routed_ok}/{n} routed, {sg.answered_ok}/{n} answered",
                sg.routed_ok == n and sg.answered_ok == n,
            ),
        ]
        if (SUPERVISOR, "seq") in self.runs:
            sup = self.median(SUPERVISOR)
            ratio = sg.total_tokens / sup.total_tokens
            value = f"{sg.total_tokens} / {sup.total_tokens} = {ratio:.3f}"
            if ("supervisor-fwd", "seq") in self.runs:
                value += f" (vs supervisor+forward: {sg.total_tokens / self.median('supervisor-fwd').total_tokens:.3f})"
            found.append(
                Claim(
                    "stellar_graph tokens <= 1/3 of the supervisor's for the same work",
                    value,
                    ratio <= 1 / 3,
                )
            )
        if (BASELINE, "seq") in self.runs:
            base = self.median(BASELINE)
            ratio = sg.overhead_per_task / base.overhead_per_task
            found.append(
                Claim(
                    "overhead per task <= 2x the plain LangGraph graph's (same SQLite checkpointer)",
                    f"{sg.overhead_per_task * 1e3:.1f} ms / {base.overhead_per_task * 1e3:.1f} ms = {ratio:.2f}x",
                    ratio <= 2.0,
                )
            )
        return found


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options (``--quick``: 8 tasks, 5 ms latency, one repetition, sequential only)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small fast run (used by the test)")
    parser.add_argument(
        "--tasks", type=int, default=None, help="number of tasks (default 40; quick 8)"
    )
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=None,
        help="simulated LLM latency per call (20; quick 5)",
    )
    parser.add_argument(
        "--repeat", type=int, default=None, help="repetitions, median shown (3; quick 1)"
    )
    parser.add_argument("--durability", choices=("sync", "async", "exit"), default="sync")
    parser.add_argument(
        "--db-dir",
        default=None,
        help="where the SQLite files go (default: the system temp dir; /dev/shm takes the disk out)",
    )
    parser.add_argument(
        "--answer-sentences", type=int, default=4, help="length of the canned answers (1-8)"
    )
    parser.add_argument(
        "--systems",
        default=",".join(DEFAULT_SYSTEMS),
        help="comma-separated: " + ", ".join(SYSTEMS),
    )
    parser.add_argument("--no-concurrent", action="store_true", help="skip the concurrent section")
    parser.add_argument(
        "--profile", action="store_true", help="always print where the time goes per node"
    )
    args = parser.parse_args(argv)
    args.tasks = args.tasks or (8 if args.quick else 40)
    args.latency_ms = (
        args.latency_ms if args.latency_ms is not None else (5.0 if args.quick else 20.0)
    )
    args.repeat = args.repeat or (1 if args.quick else 3)
    args.concurrent = not (args.no_concurrent or args.quick)
    args.systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    if not 1 <= args.answer_sentences <= 8:
        parser.error(f"--answer-sentences must be in 1..8, got {args.answer_sentences!r}")
    if args.tasks < 4:
        parser.error(f"--tasks must be at least 4 (one per agent), got {args.tasks!r}")
    unknown = [s for s in args.systems if s not in SYSTEMS]
    if unknown or STELLAR not in args.systems:
        parser.error(
            f"--systems must include 'stellar' and only name {sorted(SYSTEMS)}; got {args.systems!r}"
        )
    return args


async def _one_run(
    server: MockLLMServer,
    workload: Workload,
    system: str,
    mode: str,
    tag: str,
    root: Path,
    durability: str,
) -> RunMetrics:
    prefix = f"{system}.{mode}.{tag}"
    ctx = RunContext.fresh(workload, server.base_url(prefix), root / prefix, durability)
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(ctx.aclose)
        runner = await stack.enter_async_context(SYSTEMS[system](ctx))
        runner.saver.reset()
        gc.collect()
        started = time.perf_counter()
        walls = []
        if mode == "seq":
            outcomes = []
            for bt in workload.tasks:
                begun = time.perf_counter()
                outcomes.append(await runner.run_one(bt))
                walls.append(time.perf_counter() - begun)
        else:
            outcomes = await runner.run_many(workload.tasks, CONCURRENCY)
        wall = time.perf_counter() - started
        checkpointer = {op: (int(n), float(s)) for op, (n, s) in runner.saver.timings.items()}
    base = RunMetrics(
        system,
        runner.label,
        mode,
        len(workload.tasks),
        wall=wall,
        checkpointer=checkpointer,
        task_walls=walls,
    )
    return measure_run(base, workload, server.calls_of(prefix), outcomes)


async def run_benchmark(options: argparse.Namespace) -> BenchResult:
    """Run every selected system (warm-up, then ``repeat`` interleaved repetitions)."""
    ensure_offline_encodings()
    workload = make_workload(options.tasks, options.answer_sentences)
    warmup = make_workload(1 if options.quick else WARMUP_TASKS, options.answer_sentences)
    result = BenchResult(options, workload)
    modes = ["seq", "conc"] if options.concurrent else ["seq"]
    with (
        tempfile.TemporaryDirectory(prefix="bench_vs_peers-", dir=options.db_dir) as tmp,
        MockLLMServer(workload, latency=options.latency_ms / 1e3) as server,
    ):
        root = Path(tmp)
        for system in options.systems:
            await _one_run(server, warmup, system, "seq", "warmup", root, options.durability)
        for rep in range(options.repeat):
            for mode in modes:
                for system in options.systems:
                    if mode == "conc" and system in SHARED_THREAD:
                        continue
                    run = await _one_run(
                        server, workload, system, mode, str(rep), root, options.durability
                    )
                    result.runs.setdefault((system, mode), []).append(run)
        result.server_errors = list(server.errors)
        overhead_ok = all(c.ok for c in result.claims() if c.text.startswith("overhead"))
        # --quick timings (5 ms latency, 8 tasks) are too small to profile unless asked to.
        if options.profile or not (overhead_ok or options.quick):
            names = [STELLAR, "stellar-graph", *([BASELINE] if BASELINE in options.systems else [])]
            result.profile = await profile_systems(
                server, workload, names, root / "profile", options.durability
            )
    return result


def _x(value: float, reference: float) -> str:
    return f"{value / reference:.2f}x" if reference else "-"


def sequential_table(result: BenchResult) -> str:
    """The main table: one task at a time."""
    sg = result.median(STELLAR)
    headers = [
        "system",
        "calls route/work",
        "prompt tok",
        "(schemas)",
        "compl tok",
        "total tok",
        "(routing)",
        "x stellar",
        "routed ok",
        "wall/task ms",
        "(q1 -> q4)",
        "agent/task ms",
        "overhead/task ms",
        "(min-max)",
        "x stellar",
        "ckpt/task ms",
        "(writes)",
    ]
    rows = []
    for system in result.options.systems:
        runs = result.runs[(system, "seq")]
        r = median_run(runs)
        first, last = r.quarter_walls()
        rows.append(
            [
                r.label,
                f"{r.routing_calls}/{r.work_calls}",
                r.prompt_tokens + r.schema_tokens,
                r.schema_tokens,
                r.completion_tokens,
                r.total_tokens,
                r.routing_tokens,
                _x(r.total_tokens, sg.total_tokens),
                f"{r.routed_ok}/{r.tasks}",
                f"{r.wall_per_task * 1e3:.1f}",
                f"{first * 1e3:.0f} -> {last * 1e3:.0f}",
                f"{r.agent_per_task * 1e3:.1f}",
                f"{r.overhead_per_task * 1e3:.1f}",
                spread(runs) or "-",
                _x(r.overhead_per_task, sg.overhead_per_task),
                f"{r.checkpoint_per_task * 1e3:.1f}",
                f"{r.checkpoint_writes_per_task:.0f}",
            ]
        )
    return render_table(headers, rows)


def concurrent_table(result: BenchResult) -> str:
    """Tasks in flight together (stellar_graph: one batch; peers: up to CONCURRENCY threads)."""
    sg = result.median(STELLAR, "conc")
    headers = [
        "system",
        "calls route/work",
        "routed ok",
        "wall/task ms",
        "agent busy/task ms",
        "overhead/task ms",
        "(min-max)",
        "x stellar",
        "ckpt writes/task",
    ]
    rows = []
    for system in result.options.systems:
        if (system, "conc") not in result.runs:
            continue
        runs = result.runs[(system, "conc")]
        r = median_run(runs)
        rows.append(
            [
                r.label,
                f"{r.routing_calls}/{r.work_calls}",
                f"{r.routed_ok}/{r.tasks}",
                f"{r.wall_per_task * 1e3:.1f}",
                f"{r.agent_per_task * 1e3:.1f}",
                f"{r.overhead_per_task * 1e3:.1f}",
                spread(runs) or "-",
                _x(r.overhead_per_task, sg.overhead_per_task),
                f"{r.checkpoint_writes_per_task:.0f}",
            ]
        )
    return render_table(headers, rows)


def floor_lines(result: BenchResult) -> list[str]:
    """What LangGraph alone costs for stellar_graph's design, beside the plain graph and stellar_graph."""
    if (SHAPE, "seq") not in result.runs or (BASELINE, "seq") not in result.runs:
        return []
    sg, base, floor = (result.median(s).overhead_per_task for s in (STELLAR, BASELINE, SHAPE))
    return [
        f"[floor] the design's runs and steps alone (stellar-shape, no-op nodes): {floor * 1e3:.1f} ms overhead "
        f"per task = {floor / base:.2f}x the plain graph's {base * 1e3:.1f} ms; stellar_graph adds "
        f"{(sg - floor) * 1e3:.1f} ms of its own ({sg / floor:.2f}x its shape)",
    ]


def report(result: BenchResult) -> str:
    """The full text report."""
    o = result.options
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        f"bench_vs_peers: {o.tasks} tasks, 4 agents, LLM latency {o.latency_ms:g} ms/call, SQLite checkpointer, "
        f"durability={o.durability}, SQLite files under {o.db_dir or tempfile.gettempdir()}, {o.repeat} repetition(s), "
        "median shown",
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}, load average {load:.2f}",
        "",
        "== one task at a time (each task finishes before the next is submitted) ==",
        sequential_table(result),
    ]
    if o.concurrent:
        lines += [
            "",
            f"== tasks in flight together (stellar_graph: one batch; peers: {CONCURRENCY} threads) ==",
            concurrent_table(result),
        ]
    lines += ["", "== issue 9 claims (sequential runs) =="]
    for claim in result.claims():
        lines.append(f"[{'PASS' if claim.ok else 'FAIL'}] {claim.text}: {claim.value}")
    lines += floor_lines(result)
    if result.server_errors:
        lines += [
            "",
            f"mock server errors ({len(result.server_errors)}):",
            *result.server_errors[:10],
        ]
    if result.profile:
        lines += ["", result.profile]
    elif not all(c.ok for c in result.claims() if c.text.startswith("overhead")):
        lines += [
            "",
            "(overhead claim failed: run without --quick, or with --profile, to see where the time goes)",
        ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print the report; exit status 1 if a claim fails or the server erred."""
    options = parse_args(argv)
    # Tasks here take milliseconds against 60-minute estimates, so the completion-time
    # predictor's calibration warnings are expected noise in this benchmark's output.
    logging.getLogger("stellar_graph").setLevel(logging.ERROR)
    result = asyncio.run(run_benchmark(options))
    print(report(result))
    return 0 if all(c.ok for c in result.claims()) and not result.server_errors else 1


if __name__ == "__main__":
    sys.exit(main())
