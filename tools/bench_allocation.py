"""Allocation benchmarks: vectorised scoring versus the per-pair Python baseline.

Sections:
    single  score one task against 100 / 1,000 / 10,000 agents and choose the best
            (``score_task(...).best()``), side by side with ``score_pair_python`` looped over
            the agents in the same run; plus ``score_matrix`` for 1,000 x 1,000.
    batch, repair  provided by ``tools/_bench_batch.py`` (``run_batch`` / ``run_repair``).

Usage:
    python tools/bench_allocation.py [--section {single,batch,repair,all}] [--quick]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

_ROOT = Path(__file__).resolve().parents[1]
if str(_ROOT / "src") not in sys.path:
    sys.path.insert(0, str(_ROOT / "src"))
if str(_ROOT / "tools") not in sys.path:
    sys.path.insert(0, str(_ROOT / "tools"))

from _synthetic import NOW, make_agents, make_tasks  # noqa: E402
from stellar_graph.config import DEFAULT_WEIGHTS  # noqa: E402
from stellar_graph.scoring import (  # noqa: E402
    TIE_EPS,
    AgentPool,
    score_matrix,
    score_pair_python,
    score_task,
)

TASK_TOKENS = 400


def fmt_time(seconds: float) -> str:
    """Seconds as a short human string (µs, ms or s)."""
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def percentiles(samples: Sequence[float]) -> tuple[float, float]:
    """(p50, p99) of timing samples."""
    arr = np.asarray(samples)
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 99))


def time_calls(fn: Callable[[Any], object], items: Sequence[Any], calls: int) -> list[float]:
    """Time ``fn(item)`` for ``calls`` calls cycling over ``items``; one sample per call."""
    samples = []
    for k in range(calls):
        item = items[k % len(items)]
        t0 = time.perf_counter()
        fn(item)
        samples.append(time.perf_counter() - t0)
    return samples


def python_best(
    task: Mapping[str, Any], agents: Sequence[Mapping[str, Any]], weights: Mapping[str, float]
) -> int | None:
    """The baseline: score every pair in Python, then choose with the same tie-break."""
    scored = []
    for i, agent in enumerate(agents):
        total, _, _ = score_pair_python(
            task, agent, weights=weights, now=NOW, task_tokens=TASK_TOKENS
        )
        if total is not None:
            scored.append((total, i))
    if not scored:
        return None
    top = max(t for t, _ in scored)
    ties = [i for t, i in scored if t >= top - TIE_EPS]
    return min(
        ties,
        key=lambda i: (agents[i].get("load", 0) / agents[i]["capacity"], agents[i]["agent_id"]),
    )


def _single_row(n: int, quick: bool) -> tuple[str, ...]:
    agents = make_agents(n, seed=n)
    tasks = make_tasks(200, seed=7)
    t0 = time.perf_counter()
    pool = AgentPool.from_records(agents)
    build = time.perf_counter() - t0

    def vectorised(task: Mapping[str, Any]) -> int | None:
        return score_task(
            task, pool, weights=DEFAULT_WEIGHTS, now=NOW, task_tokens=TASK_TOKENS
        ).best()

    time_calls(vectorised, tasks, 20)  # warm-up
    calls = (300 if n >= 10_000 else 1000) if quick else (1000 if n >= 10_000 else 4000)
    v50, v99 = percentiles(time_calls(vectorised, tasks, calls))
    py_calls = max(3, (30_000 if quick else 200_000) // n)
    py_tasks = tasks[:py_calls]
    py_samples = time_calls(lambda t: python_best(t, agents, DEFAULT_WEIGHTS), py_tasks, py_calls)
    p50, p99 = percentiles(py_samples)
    same = sum(vectorised(t) == python_best(t, agents, DEFAULT_WEIGHTS) for t in py_tasks)
    return (
        f"{n:,}",
        fmt_time(build),
        fmt_time(v50),
        fmt_time(v99),
        fmt_time(p50),
        fmt_time(p99),
        f"{p50 / v50:,.0f}x",
        f"{same}/{len(py_tasks)}",
    )


def _matrix_rows(quick: bool) -> list[tuple[str, ...]]:
    n_tasks = n_agents = 1000
    agents = make_agents(n_agents, seed=n_agents)
    tasks = make_tasks(n_tasks, seed=11)
    tokens = [TASK_TOKENS] * n_tasks
    pool = AgentPool.from_records(agents)
    reps = 3 if quick else 10
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter()
        matrix = score_matrix(tasks, pool, weights=DEFAULT_WEIGHTS, now=NOW, task_tokens=tokens)
        samples.append(time.perf_counter() - t0)
    m_time = statistics.median(samples)
    t0 = time.perf_counter()
    stacked = np.vstack(
        [
            score_task(t, pool, weights=DEFAULT_WEIGHTS, now=NOW, task_tokens=TASK_TOKENS).total
            for t in tasks
        ]
    )
    loop_time = time.perf_counter() - t0
    py_n = 20 if quick else 100
    t0 = time.perf_counter()
    for t in tasks[:py_n]:
        for a in agents:
            score_pair_python(t, a, weights=DEFAULT_WEIGHTS, now=NOW, task_tokens=TASK_TOKENS)
    py_time = (time.perf_counter() - t0) * n_tasks / py_n
    finite = np.isfinite(stacked)
    agree = np.array_equal(finite, np.isfinite(matrix)) and bool(
        np.max(np.abs(matrix[finite] - stacked[finite]), initial=0.0) <= 1e-12
    )
    label = f"{n_tasks:,} x {n_agents:,}"
    return [
        (label, "score_matrix (chunks of 1,000)", fmt_time(m_time), "1x", "yes" if agree else "NO"),
        (
            label,
            "score_task per task, stacked",
            fmt_time(loop_time),
            f"{loop_time / m_time:.1f}x",
            "-",
        ),
        (
            label,
            f"score_pair_python (extrapolated from {py_n} tasks)",
            fmt_time(py_time),
            f"{py_time / m_time:,.0f}x",
            "-",
        ),
    ]


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Print a left-aligned text table."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


def run_single(quick: bool) -> None:
    """Section "single": one task among N agents, vectorised vs per-pair Python."""
    print("\n== single task: score one task and choose the best agent ==")
    print(
        f"(task_tokens={TASK_TOKENS}, default weights, synthetic pool; baseline = "
        "score_pair_python looped over the agents + the same tie-break)\n"
    )
    rows = [_single_row(n, quick) for n in (100, 1_000, 10_000)]
    print_table(
        (
            "agents",
            "pool build",
            "vectorised p50",
            "p99",
            "python p50",
            "p99",
            "speed-up (p50)",
            "same choice",
        ),
        rows,
    )
    print("\n== score_matrix: every task against every agent ==\n")
    print_table(
        ("tasks x agents", "method", "time", "vs score_matrix", "equal (1e-12)"),
        _matrix_rows(quick),
    )


def _run_other(section: str, quick: bool) -> None:
    try:
        import _bench_batch
    except ModuleNotFoundError as exc:
        if exc.name != "_bench_batch":
            raise
        print(f"\n== {section} ==\n{section} section not available yet")
        return
    getattr(_bench_batch, f"run_{section}")(quick)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the selected benchmark sections."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--section", choices=("single", "batch", "repair", "all"), default="all")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, smaller runs")
    args = parser.parse_args(argv)
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, "
        f"{os.cpu_count()} cores, {platform.machine()}, "
        f"load average {os.getloadavg()[0]:.2f}{' (quick)' if args.quick else ''}"
    )
    if args.section in ("single", "all"):
        run_single(args.quick)
    for section in ("batch", "repair"):
        if args.section in (section, "all"):
            _run_other(section, args.quick)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
