"""Health of agents and of the process, as pure functions over the task board and samples.

Agent health is about *availability* (does the agent answer?), not quality: the inputs are the
agent's **agent errors** (the model call raised, timed out, or returned garbage), its
consecutive agent errors, its mean latency and its last heartbeat. A missed success criterion
is an outcome the learning layer weighs, so it is shown (``task_failures``) but never makes an
agent unhealthy.

System alerts compare samples with thresholds once per crossing: an alert *fires* when a value
reaches its threshold and *resolves* only when it falls below ``threshold * (1 - hysteresis)``,
so a value hovering at the threshold does not flood the channels.

Example:
    >>> tracker = AlertTracker({"cpu_usage": 0.8})
    >>> [e["state"] for e in tracker.update({"cpu_usage": 0.9})]
    ['firing']
    >>> tracker.update({"cpu_usage": 0.85})   # still above the resolve level: nothing new
    []
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from stellar_graph.board import FINISHED
from stellar_graph.errors import ConfigurationError

__all__ = [
    "ALERT_METRICS",
    "DEFAULT_ALERT_THRESHOLDS",
    "AgentHealthPolicy",
    "AlertTracker",
    "HealthStatus",
    "agent_health",
    "attempt_error_rate",
    "check_thresholds",
    "health_update",
    "percent",
]

HealthStatus = Literal["healthy", "degraded", "unhealthy"]

_ATTEMPTED = FINISHED - {"refused"}  # finished statuses that an agent's attempt produced

ALERT_METRICS = ("cpu_usage", "memory_usage", "error_rate")
DEFAULT_ALERT_THRESHOLDS: dict[str, float] = {
    "cpu_usage": 0.8,
    "memory_usage": 0.85,
    "error_rate": 0.05,
}


@dataclass(frozen=True)
class AgentHealthPolicy:
    """When an agent counts as degraded or unhealthy.

    Attributes:
        window: the agent's most recent attempts that error rate and latency are computed over.
        min_attempts: fewer attempts in the window than this never judge the error rate.
        error_rate_degraded: agent-error rate from which the agent is ``degraded``.
        error_rate_unhealthy: agent-error rate from which it is ``unhealthy``.
        consecutive_failures: agent errors in a row that make it ``unhealthy`` (the orchestra
            uses ``task_allocation.agent_failure_threshold``).
        latency_seconds: mean wall time per attempt above which it is ``degraded`` (``None``: off).
        heartbeat_timeout_seconds: for agents that send heartbeats, silence longer than this is
            ``unhealthy``.
    """

    window: int = 20
    min_attempts: int = 4
    error_rate_degraded: float = 0.25
    error_rate_unhealthy: float = 0.5
    consecutive_failures: int = 2
    latency_seconds: float | None = None
    heartbeat_timeout_seconds: float = 120.0

    def __post_init__(self) -> None:
        for name in ("window", "min_attempts", "consecutive_failures"):
            if getattr(self, name) < 1:
                raise ConfigurationError(
                    f"AgentHealthPolicy.{name} = {getattr(self, name)!r} must be >= 1.",
                    field=name,
                    value=getattr(self, name),
                )
        for name in ("error_rate_degraded", "error_rate_unhealthy"):
            if not 0 < getattr(self, name) <= 1:
                raise ConfigurationError(
                    f"AgentHealthPolicy.{name} = {getattr(self, name)!r} must be a fraction in (0, 1].",
                    field=name,
                    value=getattr(self, name),
                )
        if self.heartbeat_timeout_seconds <= 0 or (
            self.latency_seconds is not None and self.latency_seconds <= 0
        ):
            raise ConfigurationError(
                "AgentHealthPolicy: `heartbeat_timeout_seconds` and `latency_seconds` must be > 0 seconds.",
                field="heartbeat_timeout_seconds",
            )


def agent_health(
    agent: Mapping[str, Any],
    tasks: Mapping[str, Mapping[str, Any]],
    *,
    now: datetime,
    heartbeat_at: datetime | None = None,
    since: datetime | None = None,
    policy: AgentHealthPolicy = AgentHealthPolicy(),
) -> dict[str, Any]:
    """The health view of one agent from its registry record and the task board.

    Args:
        agent: the registry record (``agent_id``, ``healthy``, ``health_reason``...).
        tasks: the task board (task id -> record).
        now: the current time.
        heartbeat_at: the last explicit heartbeat (``None``: the agent sends none).
        since: only attempts from this time on count (e.g. since the agent was let back in).
        policy: the thresholds.

    Returns:
        ``status`` (``healthy``/``degraded``/``unhealthy``), ``reasons``, and the inputs:
        ``attempts``, ``agent_errors``, ``task_failures``, ``error_rate``,
        ``consecutive_failures``, ``mean_latency_seconds``, ``last_seen``,
        ``heartbeat_age_seconds``, ``active_tasks``, ``registry_healthy``.
    """
    agent_id = agent["agent_id"]
    attempts = _attempts(agent_id, tasks)
    if since is not None:
        attempts = [a for a in attempts if a["at"] is not None and a["at"] >= since]
    attempts = attempts[-policy.window :]
    errors = sum(1 for a in attempts if a["agent_error"])
    rate = errors / len(attempts) if attempts else None
    streak = 0
    for attempt in reversed(attempts):
        if not attempt["agent_error"]:
            break
        streak += 1
    walls = [a["wall_seconds"] for a in attempts if a["wall_seconds"] is not None]
    latency = sum(walls) / len(walls) if walls else None
    finished = [a["at"] for a in attempts if a["at"] is not None]
    seen = [t for t in (heartbeat_at, max(finished, default=None)) if t is not None]
    age = (now - heartbeat_at).total_seconds() if heartbeat_at is not None else None
    view: dict[str, Any] = {
        "agent_id": agent_id,
        "registry_healthy": agent.get("healthy", True) is not False,
        "attempts": len(attempts),
        "agent_errors": errors,
        "task_failures": sum(1 for a in attempts if a["failed"] and not a["agent_error"]),
        "error_rate": rate,
        "consecutive_failures": streak,
        "mean_latency_seconds": latency,
        "last_seen": max(seen).isoformat() if seen else None,
        "heartbeat_age_seconds": age,
        "active_tasks": sum(
            1
            for t in tasks.values()
            if t.get("agent_id") == agent_id
            and t.get("status") in {"allocated", "queued", "running"}
        ),
    }
    view["status"], view["reasons"] = _judge(view, agent, policy, len(attempts))
    return view


def _judge(
    view: Mapping[str, Any], agent: Mapping[str, Any], policy: AgentHealthPolicy, n: int
) -> tuple[HealthStatus, list[str]]:
    bad: list[str] = []
    if not view["registry_healthy"]:
        bad.append(f"taken out of allocation: {agent.get('health_reason') or 'no reason recorded'}")
    if view["consecutive_failures"] >= policy.consecutive_failures:
        bad.append(
            f"{view['consecutive_failures']} agent errors in a row (limit {policy.consecutive_failures})"
        )
    rate = view["error_rate"]
    judged = rate is not None and n >= policy.min_attempts
    if judged and rate >= policy.error_rate_unhealthy:
        bad.append(
            f"agent-error rate {rate:.0%} over the last {n} attempts (limit {policy.error_rate_unhealthy:.0%})"
        )
    age = view["heartbeat_age_seconds"]
    if age is not None and age > policy.heartbeat_timeout_seconds:
        bad.append(f"no heartbeat for {age:.0f} s (limit {policy.heartbeat_timeout_seconds:.0f} s)")
    if bad:
        return "unhealthy", bad
    meh: list[str] = []
    if judged and rate >= policy.error_rate_degraded:
        meh.append(
            f"agent-error rate {rate:.0%} over the last {n} attempts (degraded from {policy.error_rate_degraded:.0%})"
        )
    latency = view["mean_latency_seconds"]
    if (
        policy.latency_seconds is not None
        and latency is not None
        and latency > policy.latency_seconds
    ):
        meh.append(f"mean latency {latency:.2f} s (degraded above {policy.latency_seconds:.2f} s)")
    return ("degraded", meh) if meh else ("healthy", [])


def _attempts(agent_id: str, tasks: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The agent's attempts in time order: final reports, and attempts that were reassigned."""
    found: list[tuple[str, int, dict[str, Any]]] = []
    for task in tasks.values():
        seq = int(task.get("seq", 0))
        for step in task.get("recovery") or []:
            if step.get("step") == "reassign" and step.get("from") == agent_id:
                # Reassigned attempts carry no time of their own before `at` exists on the
                # step; the submission time keeps them in submission order.
                at = step.get("at") or task.get("submitted_at") or ""
                found.append(
                    (
                        at,
                        seq,
                        {
                            "agent_error": True,
                            "failed": True,
                            "wall_seconds": None,
                            "at": _time(step.get("at")),
                        },
                    )
                )
        report = task.get("report") or {}
        if report.get("agent_id") == agent_id and task.get("status") in _ATTEMPTED:
            at = report.get("finished_at") or task.get("finished_at") or ""
            found.append((at, seq, {
                "agent_error": bool(report.get("agent_error")),
                "failed": task.get("status") != "completed",
                "wall_seconds": report.get("wall_seconds", task.get("wall_seconds")),
                "at": _time(at),
            }))  # fmt: skip
    found.sort(key=lambda item: (item[0], item[1]))
    return [attempt for _, _, attempt in found]


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


def attempt_error_rate(before: Mapping[str, float], after: Mapping[str, float]) -> float | None:
    """Share of agent attempts between two metric snapshots that did not complete.

    An attempt that failed its task or was reassigned after an agent error counts as an error.
    ``None`` when no attempt finished in between.
    """
    calls = after.get("agent_calls", 0) - before.get("agent_calls", 0)
    if calls <= 0:
        return None
    bad = sum(after.get(k, 0) - before.get(k, 0) for k in ("tasks_failed", "tasks_reassigned"))
    return max(0.0, min(1.0, bad / calls))


def check_thresholds(thresholds: Mapping[str, float | None] | None) -> dict[str, float]:
    """The alert thresholds, defaults filled in; a metric set to ``None`` is not watched.

    Raises:
        ConfigurationError: an unknown metric or a value outside (0, 1].
    """
    merged: dict[str, float] = dict(DEFAULT_ALERT_THRESHOLDS)
    for key, value in (thresholds or {}).items():
        if key not in ALERT_METRICS:
            raise ConfigurationError(
                f"Unknown alert threshold {key!r}. Fix: use one of {list(ALERT_METRICS)}.",
                field="alert_thresholds",
                value=key,
            )
        if value is None:
            merged.pop(key)
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
            raise ConfigurationError(
                f"Alert threshold `{key}` = {value!r} is not a fraction. Fix: give a number in (0, 1], "
                "e.g. 0.8 for 80%, or None to stop watching it.",
                field=f"alert_thresholds.{key}",
                value=value,
            )
        merged[key] = float(value)
    return merged


class AlertTracker:
    """Fires one alert per threshold crossing, and one resolution when the value is back down.

    Args:
        thresholds: metric -> threshold.
        hysteresis: a firing alert resolves below ``threshold * (1 - hysteresis)``.
    """

    def __init__(self, thresholds: Mapping[str, float], *, hysteresis: float = 0.1) -> None:
        self.thresholds = dict(thresholds)
        self.hysteresis = hysteresis
        self.firing: dict[str, int] = {}
        """metric -> consecutive samples it has been firing."""

    def update(self, values: Mapping[str, float | None]) -> list[dict[str, Any]]:
        """Feed one sample; return the alert transitions it caused (``firing``/``resolved``)."""
        changes: list[dict[str, Any]] = []
        for metric, threshold in self.thresholds.items():
            value = values.get(metric)
            if value is None:
                continue
            if metric in self.firing:
                if value < threshold * (1 - self.hysteresis):
                    del self.firing[metric]
                    changes.append(_alert(metric, value, threshold, "resolved"))
                else:
                    self.firing[metric] += 1
            elif value >= threshold:
                self.firing[metric] = 1
                changes.append(_alert(metric, value, threshold, "firing"))
        return changes


def _alert(metric: str, value: float, threshold: float, state: str) -> dict[str, Any]:
    verb = "reached" if state == "firing" else "is back below"
    return {
        "metric": metric,
        "value": round(value, 4),
        "threshold": threshold,
        "state": state,
        "message": f"{metric} {percent(value)} {verb} the {percent(threshold)} threshold",
    }


def percent(fraction: float) -> str:
    """``0.0001`` -> ``'0.01%'``, ``0.8`` -> ``'80%'`` (up to 3 significant digits)."""
    return f"{fraction * 100:.3g}%"


def health_update(
    agents: Mapping[str, Mapping[str, Any]],
    tasks: Mapping[str, Mapping[str, Any]],
    requests: Iterable[Mapping[str, Any]],
) -> dict[str, Any]:
    """The state update for ``set_agent_health`` requests (for the intake node).

    Each request is ``{"agent_id", "healthy": bool, "reason"}``. An agent marked unhealthy is
    excluded from allocation and its bound but unstarted tasks go back to the board (the same
    local repair as when the agent node takes an agent out); marked healthy, it is allocated
    again. Unknown agents are ignored (they may have been removed meanwhile).

    Returns:
        ``{"agents": ..., "tasks": ..., "events": [...]}`` (empty dicts/lists when nothing changes).
    """
    from stellar_graph.recovery import (
        returned_patch,  # pure; imported here to keep this module light
    )

    update: dict[str, Any] = {"agents": {}, "tasks": {}, "events": []}
    for request in requests:
        agent_id = request["agent_id"]
        if agent_id not in agents:
            continue
        healthy, reason = bool(request["healthy"]), str(request.get("reason") or "")
        update["agents"][agent_id] = {
            "healthy": healthy,
            "health_reason": None if healthy else reason,
        }
        if healthy:
            update["events"].append(
                {"type": "agent_recovered", "agent_id": agent_id, "reason": reason}
            )
            continue
        unstarted = [
            t
            for t in tasks.values()
            if t.get("agent_id") == agent_id and t.get("status") in {"allocated", "queued"}
        ]
        for task in unstarted:
            update["tasks"][task["id"]] = returned_patch(task, agent_id, reason)
        update["events"].append({
            "type": "agent_failure", "agent_id": agent_id, "reason": reason,
            "returned_tasks": [t["id"] for t in unstarted], "source": "health_monitor",
        })  # fmt: skip
    return update
