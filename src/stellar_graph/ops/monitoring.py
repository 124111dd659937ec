"""Background health monitors: the process (psutil) and single agents.

Both are asyncio tasks on the orchestra's loop that call :meth:`check` every interval; a check
that raises is logged and the loop goes on. ``check()`` can also be awaited directly (tests,
or an operator who wants a reading now).

- :class:`SystemMonitor` samples this process's CPU and memory (psutil) and the orchestra's
  attempt error rate over the last few samples, and emits ``system_alert`` events once per
  threshold crossing (see :class:`~stellar_graph.ops.health.AlertTracker`). An alert still
  firing after ``escalate_after`` samples, or a registry where no agent is healthy any more,
  is escalated (``handle_emergency``) when ``emergency_protocols.auto_escalation`` is on.
- :class:`AgentMonitor` evaluates one agent's health view and emits a ``system_alert`` of kind
  ``agent_health`` on each change of status; it asks the orchestra to take an unhealthy agent
  out of allocation and, after a cool-down, to let it back in (half-open: the next errors take
  it out again).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from datetime import datetime
from typing import Any

from stellar_graph.errors import ConfigurationError
from stellar_graph.ops.health import AlertTracker, attempt_error_rate, percent

__all__ = ["AgentMonitor", "ProcessSampler", "SystemMonitor"]

logger = logging.getLogger(__name__)

Emit = Callable[[dict[str, Any]], Awaitable[Any]]


class ProcessSampler:
    """Real measurements of this process (and the machine) with psutil.

    ``cpu_usage`` is the process's CPU time since the previous sample as a fraction of the whole
    machine (all cores); ``memory_usage`` is its resident memory as a fraction of total RAM. The
    machine-wide figures are reported beside them as ``system_cpu_usage`` and
    ``system_memory_usage``.

    Raises:
        ConfigurationError: psutil is not installed (the ``ops`` extra).
    """

    def __init__(self) -> None:
        try:
            import psutil
        except ImportError:
            raise ConfigurationError(
                "Health monitoring needs psutil. Fix: pip install 'stellar-graph[ops]'.",
                field="ops",
            ) from None
        self._psutil = psutil
        self._process = psutil.Process()
        self._cores = psutil.cpu_count() or 1
        self._process.cpu_percent(None)  # the first reading is always 0.0: prime both counters
        psutil.cpu_percent(None)

    def sample(self) -> dict[str, float]:
        """One reading (non-blocking: CPU is measured since the previous call)."""
        with self._process.oneshot():
            cpu = self._process.cpu_percent(None)
            rss = self._process.memory_info().rss
            memory = self._process.memory_percent()
            threads = self._process.num_threads()
        return {
            "cpu_usage": min(cpu / 100 / self._cores, 1.0),
            "memory_usage": memory / 100,
            "rss_bytes": float(rss),
            "threads": float(threads),
            "system_cpu_usage": self._psutil.cpu_percent(None) / 100,
            "system_memory_usage": self._psutil.virtual_memory().percent / 100,
        }


class _Loop:
    """Runs ``check()`` every ``interval`` seconds as a background task."""

    interval: float
    name = "stellar-monitor"

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None
        self.checks = 0
        self.errors = 0

    async def check(self) -> dict[str, Any]:  # pragma: no cover - overridden
        raise NotImplementedError

    def start(self) -> None:
        """Start checking in the background (needs a running event loop)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)

    @property
    def running(self) -> bool:
        """True while the background loop runs."""
        return self._task is not None and not self._task.done()

    async def aclose(self) -> None:
        """Stop the background loop."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.check()
            except asyncio.CancelledError:
                raise
            except Exception:
                self.errors += 1
                logger.warning("%s check failed", self.name, exc_info=True)
            await asyncio.sleep(self.interval)


class SystemMonitor(_Loop):
    """Samples the process and the orchestra's error rate; emits ``system_alert`` on crossings.

    Args:
        interval: seconds between checks.
        thresholds: ``cpu_usage``, ``memory_usage``, ``error_rate`` (fractions).
        sampler: the measurement source (:class:`ProcessSampler`).
        counters: returns the orchestra's metric counters (``agent_calls``, ``tasks_failed``...).
        agents: returns the registry (to notice when no agent is healthy).
        emit: delivers an event to the orchestra's handlers.
        escalate: called once per crossing for an alert firing ``escalate_after`` samples in a
            row, and when no agent is healthy (``None``: no escalation).
        clock: the orchestra's clock.
        window: samples the error rate is computed over.
        escalate_after: consecutive firing samples before escalation.
    """

    name = "stellar-health-monitor"

    def __init__(
        self,
        *,
        interval: float,
        thresholds: Mapping[str, float],
        sampler: ProcessSampler,
        counters: Callable[[], Mapping[str, float]],
        agents: Callable[[], Mapping[str, Mapping[str, Any]]],
        emit: Emit,
        escalate: Emit | None,
        clock: Callable[[], datetime],
        window: int = 10,
        escalate_after: int = 3,
    ) -> None:
        super().__init__()
        if interval <= 0:
            raise ConfigurationError(
                f"check_interval_seconds = {interval!r} must be > 0. Fix: e.g. 30.",
                field="check_interval_seconds",
                value=interval,
            )
        self.interval = interval
        self.tracker = AlertTracker(thresholds)
        self._sampler, self._counters, self._agents = sampler, counters, agents
        self._emit, self._escalate, self._clock = emit, escalate, clock
        self._history: deque[dict[str, float]] = deque(maxlen=window + 1)
        self._escalate_after = escalate_after
        self._escalated: set[str] = set()
        self.last_sample: dict[str, Any] | None = None
        self.alerts: deque[dict[str, Any]] = deque(maxlen=100)

    async def check(self) -> dict[str, Any]:
        """Take one sample, emit the alerts it causes, escalate what persists; return the sample."""
        sample: dict[str, Any] = dict(self._sampler.sample())
        self._history.append(dict(self._counters()))
        sample["error_rate"] = attempt_error_rate(self._history[0], self._history[-1])
        agents = self._agents()
        sample["agents"] = len(agents)
        sample["healthy_agents"] = sum(
            1 for a in agents.values() if a.get("healthy", True) is not False
        )
        sample["at"] = self._clock().isoformat()
        self.last_sample = sample
        self.checks += 1
        for change in self.tracker.update(sample):
            event = {"type": "system_alert", "kind": "threshold", **change, "at": sample["at"]}
            self.alerts.append(event)
            await self._emit(event)
            if change["state"] == "resolved":
                self._escalated.discard(change["metric"])
        await self._escalations(sample)
        return sample

    async def _escalations(self, sample: Mapping[str, Any]) -> None:
        due = [
            m
            for m, n in self.tracker.firing.items()
            if n >= self._escalate_after and m not in self._escalated
        ]
        if sample["agents"] and not sample["healthy_agents"]:
            due.append("no_healthy_agents")
        elif sample["healthy_agents"]:
            self._escalated.discard("no_healthy_agents")
        for metric in due:
            if metric in self._escalated or self._escalate is None:
                continue
            self._escalated.add(metric)
            if metric == "no_healthy_agents":
                reason = f"none of the {sample['agents']} registered agents is healthy: no work can be allocated"
            else:
                value, limit = sample.get(metric), self.tracker.thresholds[metric]
                shown = percent(float(value)) if value is not None else "(no reading)"
                reason = f"{metric} {shown} has stayed above {percent(limit)} for {self.tracker.firing[metric]} checks"
            await self._escalate(
                {
                    "type": "system_alert",
                    "kind": metric,
                    "severity": "critical",
                    "reason": reason,
                    "at": sample["at"],
                }
            )

    def summary(self) -> dict[str, Any]:
        """Running state, thresholds, the last sample and the alerts firing now."""
        return {
            "running": self.running,
            "interval_seconds": self.interval,
            "thresholds": dict(self.tracker.thresholds),
            "checks": self.checks,
            "check_errors": self.errors,
            "firing": sorted(self.tracker.firing),
            "last_sample": self.last_sample,
        }


class AgentMonitor(_Loop):
    """Watches one agent's health view; takes it out when unhealthy and lets it back after a cool-down.

    Args:
        agent_id: the agent.
        interval: seconds between checks.
        view: returns the agent's health view, given the time its attempts count from.
        set_health: asks the orchestra to mark the agent (``agent_id, healthy, reason``).
        emit: delivers an event to the orchestra's handlers.
        clock: the orchestra's clock.
        recover_after_seconds: how long an agent stays out before it is let back in (``None``:
            never automatically).
    """

    def __init__(
        self,
        agent_id: str,
        *,
        interval: float,
        view: Callable[[datetime | None], dict[str, Any]],
        set_health: Callable[[str, bool, str], Coroutine[Any, Any, None]],
        emit: Emit,
        clock: Callable[[], datetime],
        recover_after_seconds: float | None,
    ) -> None:
        super().__init__()
        self.name = f"stellar-agent-monitor-{agent_id}"
        self.agent_id, self.interval = agent_id, interval
        self._view, self._set_health, self._emit, self._clock = view, set_health, emit, clock
        self._recover_after = recover_after_seconds
        self.status: str | None = None
        self.last_view: dict[str, Any] | None = None
        self.since: datetime | None = None
        """Attempts before this time no longer count (set when the agent is let back in)."""
        self._out_since: datetime | None = None
        self._pending: asyncio.Task[None] | None = None

    async def check(self) -> dict[str, Any]:
        """Evaluate the agent once: alert on a change, take it out or let it back in."""
        view = self._view(self.since)
        now = self._clock()
        self.last_view, self.checks = view, self.checks + 1
        if view["status"] != self.status:
            await self._emit({
                "type": "system_alert", "kind": "agent_health", "agent_id": self.agent_id, "state": view["status"],
                "previous": self.status, "reasons": view["reasons"], "at": now.isoformat(),
            })  # fmt: skip
            self.status = view["status"]
        if self._pending is not None and not self._pending.done():
            return view  # a health change is still waiting for its run
        if view["registry_healthy"]:
            self._out_since = None
            if view["status"] == "unhealthy":
                self._request(False, "health monitor: " + "; ".join(view["reasons"]))
        else:
            self._out_since = self._out_since or now
            stale = any(r.startswith("no heartbeat") for r in view["reasons"])
            waited = (now - self._out_since).total_seconds()
            if self._recover_after is not None and waited >= self._recover_after and not stale:
                self.since = now
                self._request(True, f"health monitor: back in after {waited:.0f} s out")
        return view

    def _request(self, healthy: bool, reason: str) -> None:
        # In a task: the change is a graph run, which waits behind queued runs (or maintenance).
        self._pending = asyncio.get_running_loop().create_task(
            self._set_health(self.agent_id, healthy, reason)
        )
        self._pending.add_done_callback(self._log_failure)

    def _log_failure(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self.errors += 1
            logger.warning("health change of %s failed: %s", self.agent_id, task.exception())

    async def settle(self) -> None:
        """Wait until the health change the last check asked for has been applied."""
        if self._pending is not None:
            await asyncio.gather(self._pending, return_exceptions=True)

    async def aclose(self) -> None:
        """Stop the loop and any health change still waiting."""
        await super().aclose()
        if self._pending is not None and not self._pending.done():
            self._pending.cancel()
            await asyncio.gather(self._pending, return_exceptions=True)
