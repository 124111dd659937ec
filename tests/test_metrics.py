"""Each metric formula, on a hand-built state with hand-computed values."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from stellar_graph.collaboration._records import finish
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
        "tasks_submitted": 6, "allocations": 4, "refusals": 1, "agent_calls": 3, "control_runs": 2,
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
    # no routing counters: all 900 / 120 tokens are work; no allocation carries an estimate
    assert m["tokens"] == {
        "input": 900, "output": 120, "routing": {"input": 0, "output": 0, "calls": 0},
        "work": {"input": 900, "output": 120}, "estimated_prompt": 0,
    }
    assert m["collaboration"]["success_rate"] is None
    assert m["adaptation"] == {"learning_score": None, "decisions": 0, "weights": None}
    assert m["resources"] == {"busy_minutes": {}, "utilisation": {}}  # no task names an agent


def test_empty_state_has_no_invented_figures() -> None:
    m = performance_metrics({})
    assert m["task_allocation"]["efficiency"] is None
    assert m["performance"]["throughput_per_minute"] is None
    assert m["performance"]["mean_latency_seconds"] is None
    assert m["performance"]["latency_seconds"] is None
    assert m["performance"]["throughput"] is None
    assert m["resources"] == {"busy_minutes": {}, "utilisation": {}}
    assert m["tokens"]["routing"] == {"input": 0, "output": 0, "calls": 0}
    assert m["tokens"]["estimated_prompt"] == 0


def _at(seconds: int) -> str:
    return f"2026-01-01T00:{seconds // 60:02d}:{seconds % 60:02d}+00:00"


def _timed(status: str, agent: str, started_s: int, finished_s: int | None) -> dict:
    record = {"status": status, "submitted_at": T0, "agent_id": agent, "started_at": _at(started_s)}
    if finished_s is not None:
        record["finished_at"] = _at(finished_s)
    return record


RESOURCE_STATE = {
    "agents": {
        "a1": {"agent_id": "a1", "capacity": 1},
        "a2": {"agent_id": "a2", "capacity": 2},
        "a3": {"agent_id": "a3", "capacity": 4},  # registered, never finished a task
    },
    "tasks": {
        "a": _timed("completed", "a1", 60, 240),   # 00:01:00 -> 00:04:00 = 3 min
        "b": _timed("completed", "a1", 240, 600),  # 00:04:00 -> 00:10:00 = 6 min (last finish)
        "c": _timed("failed", "a2", 120, 440),     # 00:02:00 -> 00:07:20 = 16/3 min
        "d": _timed("running", "a2", 480, None),   # not finished: no busy time
        "e": _timed("completed", "a4", 0, 360),    # 00:00 -> 00:06 = 6 min; a4 not in the registry
    },
}


def test_throughput_alias_and_utilisation_by_hand() -> None:
    m = performance_metrics(RESOURCE_STATE)
    # 3 completed (a, b, e) / 10 minutes from the first submission (00:00) to the last completion (00:10)
    assert m["performance"]["throughput"] == pytest.approx(0.3)
    assert m["performance"]["throughput"] == m["performance"]["throughput_per_minute"]
    # busy: a1 = 3 + 6 = 9; a2 = 16/3 = 5.333333 (d has no finish); a3 = 0; a4 = 6
    assert m["resources"]["busy_minutes"] == {"a1": 9.0, "a2": 5.333333, "a3": 0.0, "a4": 6.0}
    # span = 00:00 (first submitted_at) -> 00:10 (last finished_at) = 10 min; utilisation = busy / (capacity x 10)
    # a1 = 9 / (1 x 10) = 0.9; a2 = (16/3) / (2 x 10) = 0.2666... -> 0.266667; a3 = 0 / 40 = 0.0;
    # a4 = 6 / (3 x 10) = 0.2 (no registry record: capacity 3, AgentProfile's default)
    assert m["resources"]["utilisation"] == {"a1": 0.9, "a2": 0.266667, "a3": 0.0, "a4": 0.2}


def test_utilisation_needs_a_span() -> None:
    state = {"agents": RESOURCE_STATE["agents"], "tasks": {"d": _timed("running", "a2", 480, None)}}
    m = performance_metrics(state)
    assert m["resources"] == {"busy_minutes": {"a1": 0.0, "a2": 0.0, "a3": 0.0}, "utilisation": {}}


def test_token_split_by_hand() -> None:
    state = {
        "metrics": {
            "input_tokens": 1000, "output_tokens": 300,  # agents' tasks + coordination steps
            "routing_input_tokens": 250, "routing_output_tokens": 40, "collaboration_llm_calls": 5,
        },
        "allocations": {
            "al-a": {"estimated_prompt_tokens": 120},
            "al-b": {"estimated_prompt_tokens": 80},
            "al-c": {"estimated_prompt_tokens": None},  # skipped
            "al-d": {},  # a refusal: no estimate
        },
    }
    m = performance_metrics(state)
    assert m["tokens"]["input"] == 1000 and m["tokens"]["output"] == 300  # unchanged totals
    assert m["tokens"]["routing"] == {"input": 250, "output": 40, "calls": 5}
    # work = total - routing: 1000 - 250 = 750; 300 - 40 = 260
    assert m["tokens"]["work"] == {"input": 750, "output": 260}
    assert m["tokens"]["estimated_prompt"] == 200  # 120 + 80


def test_collaboration_finish_counts_routing_tokens() -> None:
    rec = {"id": "c1", "usage": {"llm_calls": 3, "input_tokens": 250, "output_tokens": 40}}
    _, _, counters = finish(rec, "approve", "vote", "majority", datetime(2026, 1, 1, tzinfo=UTC))
    assert counters["input_tokens"] == counters["routing_input_tokens"] == 250
    assert counters["output_tokens"] == counters["routing_output_tokens"] == 40
    assert counters["collaboration_llm_calls"] == 3


def test_adaptation_passes_the_learning_summary_through() -> None:
    learning = {"learning_score": 0.125, "decisions": 42, "weights": {"skill": 0.6, "load": 0.4}, "other": 1}
    m = performance_metrics({"learning": learning})
    assert m["adaptation"] == {"learning_score": 0.125, "decisions": 42, "weights": {"skill": 0.6, "load": 0.4}}
