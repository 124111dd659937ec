"""Each metric formula, on a hand-built state with hand-computed values."""

from __future__ import annotations

import pytest

from stellar_graph.metrics import performance_metrics

T0 = "2026-01-01T00:00:00+00:00"


def _task(status: str, finished_s: int | None) -> dict:
    record = {"status": status, "submitted_at": T0}
    if finished_s is not None:
        record["finished_at"] = f"2026-01-01T00:{finished_s // 60:02d}:{finished_s % 60:02d}+00:00"
    return record


STATE = {
    "tasks": {
        "a": _task("completed", 60),
        "b": _task("completed", 120),
        "c": _task("failed", 30),
        "d": _task("refused", None),
        "e": _task("running", None),
    },
    "metrics": {
        "tasks_submitted": 6, "allocations": 4, "refusals": 1, "agent_calls": 3, "waves": 2,
        "latency_seconds_total": 210.0, "latency_samples": 3, "input_tokens": 900, "output_tokens": 120,
        "pruned_tasks": 1, "pruned_completed": 1,
    },
}


def test_metric_formulas_by_hand() -> None:
    m = performance_metrics(STATE)
    # efficiency = completed / (completed + failed + refused) = (2 + 1 pruned) / (3 + 1 + 1)
    assert m["task_allocation"] == {"efficiency": pytest.approx(3 / 5), "allocations": 4, "refusals": 1}
    assert m["tasks"]["by_status"] == {"completed": 3, "failed": 1, "refused": 1, "running": 1}
    # throughput = completed on the board / minutes from first submission to last completion = 2 / 2
    assert m["performance"]["throughput_per_minute"] == pytest.approx(1.0)
    assert m["performance"]["mean_latency_seconds"] == pytest.approx(70.0)  # 210 / 3
    # spans 30, 60, 120 s: nearest-rank p50 = 2nd (60), p90 = p99 = 3rd (120)
    assert m["performance"]["latency_seconds"] == {"p50": 60.0, "p90": 120.0, "p99": 120.0}
    assert m["tokens"] == {"input": 900, "output": 120}
    assert m["collaboration"]["success_rate"] is None
    assert m["adaptation"] == {"learning_score": None}


def test_empty_state_has_no_invented_figures() -> None:
    m = performance_metrics({})
    assert m["task_allocation"]["efficiency"] is None
    assert m["performance"]["throughput_per_minute"] is None
    assert m["performance"]["mean_latency_seconds"] is None
    assert m["performance"]["latency_seconds"] is None
