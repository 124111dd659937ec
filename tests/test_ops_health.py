"""Health: agent health views from the board, alert hysteresis, real process sampling, monitors."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from stellar_graph import EDISON, AgentAnswer, ConfigurationError, StellarOrchestra
from stellar_graph.ops import (
    AgentHealthPolicy,
    AgentMonitor,
    AlertTracker,
    OperationsMixin,
    ProcessSampler,
    agent_health,
    health_update,
)
from stellar_graph.ops.health import attempt_error_rate, check_thresholds
from stellar_graph.state import OrchestraInput
from stellar_graph.testing import ScriptedChatModel, structured
from tests.conftest import FIXED_NOW

Orchestra = (
    StellarOrchestra
    if issubclass(StellarOrchestra, OperationsMixin)
    else type("Orchestra", (OperationsMixin, StellarOrchestra), {})
)
MEMORY = {"persistence": {"backend": "memory"}}
NO_RETRY = {
    **MEMORY,
    "emergency_protocols": {"recovery_strategies": ["reassign"]},
}  # no backoff waits
BUILD = {"description": "Build", "required_skills": ["engineering"]}


def _at(minutes: float) -> str:
    return (FIXED_NOW + timedelta(minutes=minutes)).isoformat()


def _task(tid: str, agent: str, status: str, minute: float, **report: Any) -> dict[str, Any]:
    return {
        "id": tid, "seq": int(minute), "status": status, "agent_id": agent, "submitted_at": _at(0),
        "report": {"agent_id": agent, "finished_at": _at(minute), "wall_seconds": 2.0, **report},
    }  # fmt: skip


def test_agent_errors_in_a_row_make_an_agent_unhealthy_but_missed_criteria_do_not() -> None:
    agent = {"agent_id": "a", "healthy": True}
    board = {
        "t1": _task("t1", "a", "completed", 1),
        "t2": _task("t2", "a", "failed", 2),  # missed its criteria: an outcome, not an agent error
        "t3": _task("t3", "a", "failed", 3, agent_error=True, wall_seconds=4.0),
        "t4": _task("t4", "a", "failed", 4, agent_error=True, wall_seconds=6.0),
        "t5": _task("t5", "b", "failed", 5, agent_error=True),  # someone else's
    }
    view = agent_health(
        agent, board, now=FIXED_NOW, policy=AgentHealthPolicy(consecutive_failures=2)
    )
    assert (view["status"], view["attempts"], view["agent_errors"], view["task_failures"]) == (
        "unhealthy",
        4,
        2,
        1,
    )
    assert view["consecutive_failures"] == 2
    assert view["error_rate"] == 0.5
    assert view["mean_latency_seconds"] == (2.0 + 2.0 + 4.0 + 6.0) / 4
    assert view["reasons"] == [
        "2 agent errors in a row (limit 2)",
        "agent-error rate 50% over the last 4 attempts (limit 50%)",
    ]
    # Let back in at minute 3.5: only the error after that counts.
    later = agent_health(agent, board, now=FIXED_NOW, since=FIXED_NOW + timedelta(minutes=3.5))
    assert (later["attempts"], later["consecutive_failures"], later["status"]) == (1, 1, "healthy")


def test_reassigned_attempts_count_as_agent_errors_and_heartbeats_can_go_stale() -> None:
    board = {
        "t1": {
            **_task("t1", "b", "completed", 2),
            "recovery": [{"step": "reassign", "from": "a", "at": _at(1)}],
        },
        "t2": _task("t2", "a", "completed", 3),
    }
    policy = AgentHealthPolicy(
        min_attempts=2,
        error_rate_degraded=0.5,
        error_rate_unhealthy=0.75,
        heartbeat_timeout_seconds=60,
    )
    view = agent_health(
        {"agent_id": "a"}, board, now=FIXED_NOW + timedelta(minutes=4), policy=policy
    )
    assert (view["attempts"], view["agent_errors"], view["consecutive_failures"]) == (2, 1, 0)
    assert view["status"] == "degraded"
    assert view["last_seen"] == _at(3)
    stale = agent_health(
        {"agent_id": "a"},
        board,
        now=FIXED_NOW + timedelta(minutes=4),
        heartbeat_at=FIXED_NOW,
        policy=policy,
    )
    assert stale["status"] == "unhealthy"
    assert stale["reasons"] == ["no heartbeat for 240 s (limit 60 s)"]


def test_a_registry_take_out_is_unhealthy_with_its_reason() -> None:
    view = agent_health(
        {"agent_id": "a", "healthy": False, "health_reason": "2 agent errors in a row"},
        {},
        now=FIXED_NOW,
    )
    assert view["status"] == "unhealthy"
    assert view["reasons"] == ["taken out of allocation: 2 agent errors in a row"]
    assert view["error_rate"] is None and view["last_seen"] is None


def test_alerts_fire_once_per_crossing_with_hysteresis() -> None:
    tracker = AlertTracker({"cpu_usage": 0.8, "error_rate": 0.05})
    states = []
    for cpu in [0.5, 0.81, 0.95, 0.75, 0.71, 0.85, 0.2]:
        states.append(
            [
                (a["metric"], a["state"])
                for a in tracker.update({"cpu_usage": cpu, "error_rate": None})
            ]
        )
    # 0.75 is above the resolve level 0.72: still firing; 0.71 resolves; 0.85 fires again.
    assert states == [
        [],
        [("cpu_usage", "firing")],
        [],
        [],
        [("cpu_usage", "resolved")],
        [("cpu_usage", "firing")],
        [("cpu_usage", "resolved")],
    ]
    assert tracker.firing == {}


def test_thresholds_are_checked_and_error_rates_come_from_counter_deltas() -> None:
    assert check_thresholds({"cpu_usage": 0.5}) == {
        "cpu_usage": 0.5,
        "memory_usage": 0.85,
        "error_rate": 0.05,
    }
    assert check_thresholds({"cpu_usage": None}) == {"memory_usage": 0.85, "error_rate": 0.05}
    with pytest.raises(ConfigurationError, match="Unknown alert threshold 'disk_usage'"):
        check_thresholds({"disk_usage": 0.5})
    with pytest.raises(ConfigurationError, match=r"`cpu_usage` = 80 is not a fraction"):
        check_thresholds({"cpu_usage": 80})
    with pytest.raises(
        ConfigurationError, match=r"AgentHealthPolicy.error_rate_unhealthy = 50 must be a fraction"
    ):
        AgentHealthPolicy(error_rate_unhealthy=50)
    before = {"agent_calls": 10, "tasks_failed": 1, "tasks_reassigned": 0}
    after = {"agent_calls": 20, "tasks_failed": 3, "tasks_reassigned": 2}
    assert attempt_error_rate(before, after) == 0.4
    assert attempt_error_rate(after, after) is None


def test_health_update_takes_an_agent_out_and_returns_its_unstarted_work() -> None:
    agents = {"a": {"agent_id": "a"}, "b": {"agent_id": "b"}}
    tasks = {
        "q": {"id": "q", "status": "queued", "agent_id": "a"},
        "r": {"id": "r", "status": "running", "agent_id": "a"},
        "o": {"id": "o", "status": "allocated", "agent_id": "b"},
    }
    update = health_update(agents, tasks, [
        {"agent_id": "a", "healthy": False, "reason": "no heartbeat"},
        {"agent_id": "b", "healthy": True, "reason": "cool-down over"},
        {"agent_id": "ghost", "healthy": False, "reason": "x"},
    ])  # fmt: skip
    assert update["agents"] == {
        "a": {"healthy": False, "health_reason": "no heartbeat"},
        "b": {"healthy": True, "health_reason": None},
    }
    assert list(update["tasks"]) == ["q"]
    assert update["tasks"]["q"]["status"] == "pending" and update["tasks"]["q"]["agent_id"] is None
    assert [e["type"] for e in update["events"]] == ["agent_failure", "agent_recovered"]
    assert update["events"][0]["returned_tasks"] == ["q"]


def test_the_process_sampler_reads_real_values() -> None:
    sampler = ProcessSampler()
    sum(i * i for i in range(200_000))  # some CPU time to measure
    sample = sampler.sample()
    assert 0 <= sample["cpu_usage"] <= 1 and 0 < sample["memory_usage"] < 1
    assert sample["rss_bytes"] > 10 * 2**20 and sample["threads"] >= 1
    assert 0 <= sample["system_cpu_usage"] <= 1 and 0 < sample["system_memory_usage"] <= 1


async def test_system_monitor_alerts_on_real_memory_and_on_the_error_rate_of_a_real_run(
    fixed_clock,
) -> None:
    events: list[dict[str, Any]] = []
    failing = ScriptedChatModel(responses=[ConnectionError("provider down")])
    async with Orchestra(NO_RETRY, model=failing, clock=fixed_clock) as orchestra:
        orchestra.on("*", events.append)
        await orchestra.register_agent(EDISON.default_profile("edison-001"))
        # A memory threshold this process certainly exceeds (RSS is well above 0.01% of RAM).
        monitor = orchestra.start_health_monitoring(
            {
                "check_interval_seconds": 3600,
                "alert_thresholds": {"memory_usage": 0.0001, "cpu_usage": None},
            }
        )
        first = await monitor.check()
        await orchestra.orchestrate_multiple_tasks([{"id": "t1", **BUILD}])
        await orchestra.wait_idle()
        second = await monitor.check()
        await monitor.check()
        await orchestra.aclose_operations()
    alerts = [e for e in events if e["type"] == "system_alert"]
    assert [(a["metric"], a["state"]) for a in alerts] == [
        ("memory_usage", "firing"),
        ("error_rate", "firing"),
    ]
    assert alerts[0]["value"] == round(first["memory_usage"], 4) and first["error_rate"] is None
    assert second["error_rate"] == 1.0  # the one attempt raised
    assert (second["agents"], second["healthy_agents"]) == (1, 1)
    assert orchestra.state()["metrics"]["agent_calls"] == 1


async def test_persistent_alerts_and_a_team_without_healthy_agents_escalate(fixed_clock) -> None:
    emergencies: list[dict[str, Any]] = []
    failing = ScriptedChatModel(responses=[ConnectionError("down")] * 2)
    async with Orchestra(NO_RETRY, model=failing, clock=fixed_clock) as orchestra:
        orchestra.on("emergency", emergencies.append)
        await orchestra.register_agent(EDISON.default_profile("edison-001", capacity=1))
        await orchestra.orchestrate_multiple_tasks([{"id": f"t{i}", **BUILD} for i in range(2)])
        await orchestra.wait_idle()  # two agent errors in a row: the only agent is taken out
        monitor = orchestra.start_health_monitoring(
            3600, {"memory_usage": 0.0001, "cpu_usage": None, "error_rate": None}
        )
        for _ in range(4):
            await monitor.check()
        await orchestra.aclose_operations()
    assert [e["source"] for e in emergencies] == ["system_alert", "system_alert"]
    reasons = sorted(e["reason"] for e in emergencies)
    assert reasons[0].startswith("memory_usage ") and "for 3 checks" in reasons[0]
    assert reasons[1] == "none of the 1 registered agents is healthy: no work can be allocated"
    assert all(e["escalation"]["status"] == "not_configured" for e in emergencies)


async def test_bad_monitoring_settings_fail_with_the_key(fixed_clock) -> None:
    async with Orchestra(MEMORY, clock=fixed_clock) as orchestra:
        with pytest.raises(
            ConfigurationError, match=r"Unknown health monitoring setting\(s\) \['interval'\]"
        ):
            orchestra.start_health_monitoring({"interval": 5})
        with pytest.raises(ConfigurationError, match="must be > 0"):
            orchestra.start_health_monitoring(0)
        with pytest.raises(ConfigurationError, match="is not a number"):
            orchestra.start_health_monitoring("30")  # type: ignore[arg-type]


async def test_agent_monitor_alerts_on_changes_takes_out_and_lets_back_in(fixed_clock) -> None:
    now = [FIXED_NOW]
    views = iter([
        {"status": "healthy", "registry_healthy": True, "reasons": []},
        {"status": "unhealthy", "registry_healthy": True, "reasons": ["no heartbeat for 200 s (limit 120 s)"]},
        {"status": "unhealthy", "registry_healthy": False, "reasons": ["taken out of allocation: x"]},
        {"status": "unhealthy", "registry_healthy": False, "reasons": ["taken out of allocation: x"]},
    ])  # fmt: skip
    events: list[dict[str, Any]] = []
    changes: list[tuple[str, bool, str]] = []

    async def emit(event: dict[str, Any]) -> None:
        events.append(event)

    async def set_health(agent_id: str, healthy: bool, reason: str) -> None:
        changes.append((agent_id, healthy, reason))

    monitor = AgentMonitor(
        "a", interval=3600, view=lambda since: next(views), set_health=set_health, emit=emit,
        clock=lambda: now[0], recover_after_seconds=60,
    )  # fmt: skip
    for minutes in [0, 1, 1.5, 3]:
        now[0] = FIXED_NOW + timedelta(minutes=minutes)
        await monitor.check()
        await asyncio.sleep(0)  # let the requested change run
    assert [(e["state"], e["previous"]) for e in events] == [
        ("healthy", None),
        ("unhealthy", "healthy"),
    ]
    assert changes == [
        ("a", False, "health monitor: no heartbeat for 200 s (limit 120 s)"),
        ("a", True, "health monitor: back in after 90 s out"),
    ]
    assert monitor.since == FIXED_NOW + timedelta(minutes=3)


@pytest.mark.skipif(
    "set_agent_health" not in OrchestraInput.__annotations__,
    reason="needs the `set_agent_health` graph input (intake applies ops.health.health_update)",
)
async def test_a_stale_heartbeat_takes_an_agent_out_of_allocation(fixed_clock) -> None:
    answer = structured(AgentAnswer(result="done", criteria_met=[], confidence=1.0))
    async with Orchestra(
        MEMORY, model=ScriptedChatModel(responses=[answer] * 2), clock=fixed_clock
    ) as orchestra:
        await orchestra.register_agent(EDISON.default_profile("edison-001"))
        await orchestra.register_agent(EDISON.default_profile("edison-002"))
        orchestra.record_heartbeat("edison-001", at=FIXED_NOW - timedelta(minutes=10))
        monitor = orchestra.start_agent_health_monitoring("edison-001", check_interval_seconds=3600)
        view = await monitor.check()
        await monitor.settle()
        assert view["status"] == "unhealthy"
        assert orchestra.get_agent("edison-001")["healthy"] is False
        [allocation] = await orchestra.orchestrate_multiple_tasks([{"id": "t1", **BUILD}])
        await orchestra.aclose_operations()
    assert allocation.agent_id == "edison-002"


async def test_marking_health_without_the_graph_input_says_what_is_missing(fixed_clock) -> None:
    async with Orchestra(MEMORY, clock=fixed_clock) as orchestra:
        await orchestra.register_agent(EDISON.default_profile("edison-001"))
        if "set_agent_health" in OrchestraInput.__annotations__:
            await orchestra.mark_agent_health("edison-001", False, "manual")
            assert orchestra.get_agent("edison-001")["healthy"] is False
        else:
            with pytest.raises(Exception, match="has no `set_agent_health` input"):
                await orchestra.mark_agent_health("edison-001", False, "manual")
