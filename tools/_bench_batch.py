"""Batch-allocation and failure-repair benchmarks for ``stellar_graph.allocation``.

Imported by ``tools/bench_allocation.py`` (``run_batch(quick)``, ``run_repair(quick)``); also
runnable alone: ``python tools/_bench_batch.py [--quick] [--batch-only | --repair-only]``.

Score models follow section B0 of the algorithms-baselines note (uniform, skill-clustered,
five-factor); the generators live here so this file does not depend on ``tools/_synthetic.py``.

Memory is the peak-RSS delta of the call: freed heap pages are first returned to the OS (glibc
``malloc_trim``), then the kernel's peak counter (VmHWM) is reset through ``/proc/self/clear_refs``
right before the call and read right after, minus the RSS before. Unlike tracemalloc this includes
OR-Tools' C++ allocations. It excludes the score matrix itself (an input). Linux only ("n/a" else).
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

try:
    from stellar_graph.allocation import assign, repair
except ImportError:  # not installed: run from a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from stellar_graph.allocation import assign, repair

__all__ = [
    "clustered_scores",
    "five_factor_scores",
    "run_batch",
    "run_repair",
    "uniform_scores",
]

# --- score generators (section B0) ------------------------------------------------------------


def uniform_scores(n_tasks: int, n_agents: int, seed: int = 0) -> np.ndarray:
    """S_ij ~ U(0, 1)."""
    return np.random.default_rng(seed).random((n_tasks, n_agents))


def clustered_scores(n_tasks: int, n_agents: int, seed: int = 0, clusters: int = 20) -> np.ndarray:
    """Same skill cluster 0.8, else 0.2; + per-agent quality U(0, 0.15) + N(0, 0.05); clip [0, 1]."""
    rng = np.random.default_rng(seed)
    task_c = rng.integers(0, clusters, n_tasks)
    agent_c = rng.integers(0, clusters, n_agents)
    quality = rng.uniform(0.0, 0.15, n_agents)
    base = np.where(task_c[:, None] == agent_c[None, :], 0.8, 0.2) + quality[None, :]
    return np.clip(base + rng.normal(0.0, 0.05, (n_tasks, n_agents)), 0.0, 1.0)


def five_factor_scores(n_tasks: int, n_agents: int, seed: int = 0) -> np.ndarray:
    """The B0 five-factor scorer: skill .35, resource .20, workload .15, deadline .20, collab .10.

    32 skills in 8 domains of 4. Each agent: 3 skills of its domain + 1 random skill at U(0.3, 1).
    Each task: a domain and 2 of its skills at required level U(0.3, 0.9). Per-agent load, speed
    and resources make every task want the same good agents (contention).
    """
    rng = np.random.default_rng(seed)
    n_dom, per_dom = 8, 4
    a_dom = rng.integers(0, n_dom, n_agents)
    levels = np.zeros((n_agents, n_dom * per_dom))
    own = (
        a_dom[:, None] * per_dom
        + rng.permuted(np.tile(np.arange(per_dom), (n_agents, 1)), axis=1)[:, :3]
    )
    levels[np.arange(n_agents)[:, None], own] = rng.uniform(0.3, 1.0, (n_agents, 3))
    extra = rng.integers(0, n_dom * per_dom, n_agents)
    levels[np.arange(n_agents), extra] = np.maximum(
        levels[np.arange(n_agents), extra], rng.uniform(0.3, 1.0, n_agents)
    )
    avail = rng.uniform(0.2, 1.0, (n_agents, 3))
    load = rng.uniform(0.0, 0.9, n_agents)
    speed = rng.uniform(0.5, 2.0, n_agents)
    t_dom = rng.integers(0, n_dom, n_tasks)
    req_skill = (
        t_dom[:, None] * per_dom
        + rng.permuted(np.tile(np.arange(per_dom), (n_tasks, 1)), axis=1)[:, :2]
    )
    req_level = rng.uniform(0.3, 0.9, (n_tasks, 2))
    req_res = rng.uniform(0.05, 0.5, (n_tasks, 3))
    slack = rng.uniform(2.0, 20.0, n_tasks)
    duration = rng.uniform(1.0, 10.0, n_tasks)
    preferred = rng.integers(0, n_agents, (n_tasks, 5))
    out = np.empty((n_tasks, n_agents))
    for lo in range(0, n_tasks, 1000):
        hi = min(n_tasks, lo + 1000)
        sl = slice(lo, hi)
        skill = np.mean(
            [
                np.minimum(levels[:, req_skill[sl, k]].T / req_level[sl, k, None], 1.0)
                for k in range(2)
            ],
            axis=0,
        )
        res = np.min(
            [np.minimum(avail[None, :, r] / req_res[sl, r, None], 1.0) for r in range(3)], axis=0
        )
        late = slack[sl, None] - duration[sl, None] / speed[None, :]
        deadline = 1.0 / (1.0 + np.exp(-late / (0.25 * slack[sl, None])))
        collab = np.where(t_dom[sl, None] == a_dom[None, :], 0.3, 0.0)
        collab[np.arange(hi - lo)[:, None], preferred[sl]] = 1.0
        out[sl] = (
            0.35 * skill
            + 0.20 * res
            + 0.15 * (1.0 - load)[None, :]
            + 0.20 * deadline
            + 0.10 * collab
        )
    return out


GENERATORS: dict[str, Callable[[int, int, int], np.ndarray]] = {
    "uniform": uniform_scores,
    "clustered": clustered_scores,
    "five-factor": five_factor_scores,
}

# --- measurement helpers ----------------------------------------------------------------------


def _proc_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _trim_heap() -> None:
    """Hand freed heap pages back to the OS (glibc), so the next RSS baseline is honest."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _measure(fn: Callable[[], np.ndarray]) -> tuple[np.ndarray, float, float | None]:
    """(result, seconds, peak-RSS delta in MiB or None where /proc is unavailable)."""
    gc.collect()
    _trim_heap()
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")  # reset VmHWM to the current RSS
        before = _proc_kib("VmRSS")
    except OSError:
        before = None
    t0 = time.perf_counter()
    result = fn()
    seconds = time.perf_counter() - t0
    peak = _proc_kib("VmHWM")
    mem = None if before is None or peak is None else (peak - before) / 1024
    return result, seconds, mem


def _total(scores: np.ndarray, assignment: np.ndarray) -> float:
    rows = np.flatnonzero(assignment >= 0)
    return float(scores[rows, assignment[rows]].sum())


def _random_total(scores: np.ndarray, caps: np.ndarray) -> float:
    """Expected total of a uniformly random slot assignment (analytic, all pairs feasible)."""
    slots = caps.sum()
    share = min(1.0, slots / scores.shape[0])
    return float((scores @ (caps / slots)).sum() * share)


# --- run_batch --------------------------------------------------------------------------------

_HEADER = (
    f"{'scores':<12} {'strategy':<16} {'time s':>8} {'x opt time':>10} {'peak MiB':>9} "
    f"{'assigned':>9} {'total':>11} {'% of opt':>9} {'captured %':>10}"
)


def run_batch(quick: bool) -> None:
    """10,000 tasks x 1,000 agents, capacity 10 (``quick``: 2,000 x 200) on three score models.

    Prints one table: time, peak-RSS delta, % of the exact optimum and the captured improvement
    over random, (x - random) / (opt - random), for every strategy beside the exact optimum.
    """
    n_tasks, n_agents = (2_000, 200) if quick else (10_000, 1_000)
    caps = np.full(n_agents, 10, dtype=np.int64)
    print(f"\n## Batch assignment: {n_tasks:,} tasks x {n_agents:,} agents, capacity 10 each")
    print("peak MiB = peak-RSS delta of the call (malloc_trim, then VmHWM reset via clear_refs)")
    print("captured = (x - random) / (opt - random); random = expected uniform-slot total\n")
    print(_HEADER)
    for name, gen in GENERATORS.items():
        scores = gen(n_tasks, n_agents, 0)
        rand = _random_total(scores, caps)
        opt, opt_s, opt_mem = _measure(partial(assign, scores, caps, strategy="optimal"))
        best = _total(scores, opt)
        _row(name, "optimal (exact)", opt, opt_s, opt_mem, scores, best, rand, opt_s)
        for label, kwargs in _RUNS:
            result, secs, mem = _measure(partial(assign, scores, caps, **kwargs))
            _row(name, label, result, secs, mem, scores, best, rand, opt_s)
        print(
            f"{name:<12} {'random (expect.)':<16} {'':>8} {'':>10} {'':>9} {'':>9} {rand:>11.2f} "
            f"{100 * rand / best:>9.3f} {0.0:>10.2f}"
        )


_RUNS: list[tuple[str, dict[str, Any]]] = [
    ("fast (top-50)", {"strategy": "fast"}),
    ("fast (top-100)", {"strategy": "fast", "top_k": 100}),
    ("greedy", {"strategy": "greedy"}),
    ("auto", {"strategy": "auto"}),
]


def _row(
    name: str,
    label: str,
    result: np.ndarray,
    secs: float,
    mem: float | None,
    scores: np.ndarray,
    best: float,
    rand: float,
    opt_s: float,
) -> None:
    value = _total(scores, result)
    pct = 100 * value / best
    captured = 100 * (value - rand) / (best - rand)
    mem_s = "n/a" if mem is None else f"{mem:.0f}"
    print(
        f"{name:<12} {label:<16} {secs:>8.3f} {secs / opt_s:>10.2f} {mem_s:>9} "
        f"{int((result >= 0).sum()):>9,} {value:>11.2f} {pct:>9.3f} {captured:>10.2f}"
    )


# --- run_repair -------------------------------------------------------------------------------


def run_repair(quick: bool) -> None:
    """5 agents fail out of 1,000 (``quick``: 200); 10,000 tasks (2,000), capacity 12 (20% slack).

    Start from the exact optimum, fail the 5 most loaded agents, then compare ``repair`` (local,
    exact over the displaced tasks) with a full exact re-solve: time, loss, and how many tasks
    that were NOT on a failed agent each one moved.
    """
    n_tasks, n_agents = (2_000, 200) if quick else (10_000, 1_000)
    caps = np.full(n_agents, 12, dtype=np.int64)
    print(
        f"\n## Failure repair: {n_tasks:,} tasks x {n_agents:,} agents, capacity 12, 5 agents fail"
    )
    print("repair time = median of 7 calls; loss = 1 - repair total / full re-solve total\n")
    print(
        f"{'scores':<12} {'displaced':>9} {'repair ms':>10} {'re-solve s':>10} {'speed-up':>9} "
        f"{'loss %':>9} {'moved (repair)':>14} {'moved (re-solve)':>16}"
    )
    for name, gen in GENERATORS.items():
        scores = gen(n_tasks, n_agents, 1)
        start = assign(scores, caps, strategy="optimal")
        load = np.bincount(start[start >= 0], minlength=n_agents)
        failed = np.argsort(-load, kind="stable")[:5]
        times = []
        for _ in range(7):
            t0 = time.perf_counter()
            fixed = repair(start, scores, caps, failed)
            times.append(time.perf_counter() - t0)
        shrunk = caps.copy()
        shrunk[failed] = 0
        t0 = time.perf_counter()
        full = assign(scores, shrunk, strategy="optimal")
        full_s = time.perf_counter() - t0
        unaffected = ~np.isin(start, failed)
        moved_rep = int((fixed[unaffected] != start[unaffected]).sum())
        moved_full = int((full[unaffected] != start[unaffected]).sum())
        loss = 100 * (1 - _total(scores, fixed) / _total(scores, full))
        rep_ms = 1e3 * statistics.median(times)
        print(
            f"{name:<12} {int((~unaffected).sum()):>9} {rep_ms:>10.2f} {full_s:>10.2f} "
            f"{full_s * 1e3 / rep_ms:>8.0f}x {loss:>9.4f} {moved_rep:>14} {moved_full:>16}"
        )


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="2,000 x 200 instead of 10,000 x 1,000"
    )
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--batch-only", action="store_true")
    group.add_argument("--repair-only", action="store_true")
    args = parser.parse_args(argv)
    if not args.repair_only:
        run_batch(args.quick)
    if not args.batch_only:
        run_repair(args.quick)


if __name__ == "__main__":
    main()
