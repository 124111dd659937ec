"""tools/fault_injection.py: tasks through the real ChatOpenAI against a flaky endpoint lose nothing
and never call an agent beyond the retry budget (a smaller run than the tool's 200 tasks)."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))

import fault_injection
from fault_injection import FAULT_KINDS, FaultyEndpoint, beyond_budget, run_faults
from stellar_graph.board import FINISHED

SEED = 0  # every fault kind occurs at least once: the first request of ft-000..ft-006 gets one each


def test_each_request_draws_its_fault_at_the_configured_rates() -> None:
    endpoint = FaultyEndpoint(seed=0)
    draws = Counter(endpoint.fate(f"t-{i}", "atlas-001", 1)[0] for i in range(20_000))
    shares = {k: n / 20_000 for k, n in draws.items()}
    assert abs(shares["http_500"] - 0.15) < 0.01
    assert abs(shares["http_429"] + shares["http_429_retry_after"] - 0.15) < 0.01
    assert abs(shares["timeout_raise"] + shares["timeout_hang"] - 0.10) < 0.01
    assert abs(shares["malformed"] - 0.05) < 0.01
    assert abs(shares["ok"] - 0.55) < 0.01
    waits = [endpoint.fate(f"t-{i}", "a", 1) for i in range(2_000)]
    assert all(0.05 <= w <= 0.2 for kind, w in waits if kind == "http_429_retry_after")
    # The fate depends on (seed, task, agent, call number), never on scheduling.
    assert endpoint.fate("t-1", "a", 2) == FaultyEndpoint(seed=0).fate("t-1", "a", 2)


def test_calls_beyond_the_budget_are_counted_per_attempt_and_per_task() -> None:
    endpoint = FaultyEndpoint(seed=0)
    endpoint.calls.update(
        {("t1", "a"): 3, ("t1", "b"): 4, ("t2", "a"): 1, ("t2", "b"): 1, ("t2", "c"): 2}
    )
    endpoint.order.update({"t1": ["a", "b"], "t2": ["a", "b", "c"]})
    # t1/b's fourth call; with two agents per task, also t2/c's two calls.
    assert beyond_budget(endpoint, retry_max_attempts=3, max_attempts=3) == 1
    assert beyond_budget(endpoint, retry_max_attempts=3, max_attempts=2) == 3
    assert beyond_budget(endpoint, retry_max_attempts=4, max_attempts=3) == 0


def test_request_ids_come_from_the_task_message_and_the_system_prompt() -> None:
    body = {
        "messages": [
            {"role": "system", "content": "You are Atlas (instance atlas-002), ..."},
            {"role": "user", "content": "Task ft-007 (priority medium, deadline none):\n\nWork"},
        ]
    }
    assert fault_injection._ids(body) == ("ft-007", "atlas-002")


async def test_thirty_tasks_under_faults_nothing_lost_nothing_over_budget() -> None:
    report = await run_faults(30, seed=SEED)
    assert report.ok and report.lost == [] and report.beyond_budget == 0
    assert sum(report.statuses.values()) == 30 and set(report.statuses) <= FINISHED
    assert all(report.faults[kind] > 0 for kind in FAULT_KINDS), report.faults
    assert report.requests == sum(report.faults.values())
    # Every valid reply completes its task, and nothing else does.
    assert report.statuses["completed"] == report.faults["ok"]
    assert report.recovery["retry"] > 0 and report.recovery["reassign"] > 0


async def test_the_ladder_end_under_heavy_faults_with_escalation() -> None:
    report = await run_faults(30, seed=SEED, scale=2.0, escalate=True)  # 90% of requests fail
    assert report.lost == [] and report.beyond_budget == 0
    assert sum(report.statuses.values()) == 30 and set(report.statuses) <= FINISHED
    assert report.statuses["completed"] == report.faults["ok"]
    # Every escalation was answered `fail` by the harness, and that is what those tasks ended as.
    assert report.escalations > 0
    assert report.recovery["escalate"] == report.escalations
    assert report.failed_reasons["failed by human decision"] == report.escalations
    assert "degraded" not in report.statuses  # with a human on the ladder nothing ends degraded


def test_the_command_line_exits_nonzero_only_when_something_is_lost_or_over_budget(capsys) -> None:
    assert fault_injection.main(["--tasks", "8", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "lost (must be 0)                              0" in out
    assert "calls beyond retry budget (must be 0)         0" in out
