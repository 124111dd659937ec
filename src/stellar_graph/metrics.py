"""Performance metrics, computed from the checkpointed state (pure functions).

Definitions (see ``docs/metrics.md``):

- ``task_allocation.efficiency`` = completed / (completed + failed + refused) over finished
  tasks; ``None`` until a task finished.
- ``task_allocation.allocations``/``refusals``: allocator decisions (a re-allocation counts again).
- ``performance.throughput_per_minute`` = completed tasks / wall-clock minutes between the first
  submission and the last finish; ``None`` until a task completed.
- ``performance.mean_latency_seconds`` = mean of (finished_at − submitted_at) over finished tasks.
- ``performance.latency_seconds`` = p50 / p90 / p99 of the same spans over finished tasks still on
  the board, nearest-rank (the smallest span with at least p% of the spans at or below it).
- ``tokens``: prompt and completion tokens reported by the agents' model responses.
- ``collaboration.success_rate`` = succeeded / (succeeded + failed + no_decision) over
  collaborations that ran to their end; ``None`` until one finished.
- ``adaptation.learning_score`` is ``None`` until the learning component records it.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from stellar_graph.collaboration.stats import collaboration_metrics

__all__ = ["performance_metrics"]


def performance_metrics(state: Mapping[str, Any]) -> dict[str, Any]:
    """The metrics tree of one orchestra thread."""
    tasks: Mapping[str, Mapping[str, Any]] = state.get("tasks") or {}
    counters: Mapping[str, float] = state.get("metrics") or {}
    statuses = Counter(t.get("status") for t in tasks.values())
    for key, value in counters.items():  # tasks pruned from the board by maintenance still count
        if key.startswith("pruned_") and key not in {"pruned_tasks", "pruned_allocations"}:
            statuses[key.removeprefix("pruned_")] += int(value)
    finished = statuses["completed"] + statuses["failed"] + statuses["refused"]
    samples = counters.get("latency_samples", 0)
    return {
        "task_allocation": {
            "efficiency": statuses["completed"] / finished if finished else None,
            "allocations": int(counters.get("allocations", 0)),
            "refusals": int(counters.get("refusals", 0)),
        },
        "tasks": {
            "submitted": int(counters.get("tasks_submitted", 0)),
            "by_status": dict(statuses),
            "completed": statuses["completed"],
            "failed": statuses["failed"],
        },
        "performance": {
            "throughput_per_minute": _throughput(tasks),
            "mean_latency_seconds": counters.get("latency_seconds_total", 0.0) / samples if samples else None,
            "latency_seconds": _latency_percentiles(tasks),
            "agent_calls": int(counters.get("agent_calls", 0)),
            "waves": int(counters.get("waves", 0)),
        },
        "tokens": {
            "input": int(counters.get("input_tokens", 0)),
            "output": int(counters.get("output_tokens", 0)),
        },
        "collaboration": collaboration_metrics(state),
        "adaptation": {"learning_score": None},
    }


def _latency_percentiles(tasks: Mapping[str, Mapping[str, Any]]) -> dict[str, float] | None:
    """p50 / p90 / p99 of (finished_at - submitted_at) in seconds over finished tasks still on the
    board, by the nearest-rank method (the smallest value with at least p% of samples at or below)."""
    spans = sorted(
        (datetime.fromisoformat(t["finished_at"]) - datetime.fromisoformat(t["submitted_at"])).total_seconds()
        for t in tasks.values()
        if t.get("finished_at") and t.get("submitted_at")
    )
    if not spans:
        return None
    return {f"p{p}": spans[max(math.ceil(p / 100 * len(spans)) - 1, 0)] for p in (50, 90, 99)}


def _throughput(tasks: Mapping[str, Mapping[str, Any]]) -> float | None:
    done = [t for t in tasks.values() if t.get("status") == "completed" and t.get("finished_at")]
    starts = [t["submitted_at"] for t in tasks.values() if t.get("submitted_at")]
    if not done or not starts:
        return None
    first = min(datetime.fromisoformat(s) for s in starts)
    last = max(datetime.fromisoformat(t["finished_at"]) for t in done)
    minutes = max((last - first).total_seconds() / 60, 1e-9)
    return len(done) / minutes
