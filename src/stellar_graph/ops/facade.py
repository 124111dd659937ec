"""`OperationsMixin`: health monitoring, emergencies, maintenance and diagnostics on the facade.

The seed's operations calls, in Python::

    async with StellarOrchestra() as orchestra:
        orchestra.start_health_monitoring({"check_interval_seconds": 30,
            "alert_thresholds": {"cpu_usage": 0.8, "memory_usage": 0.85, "error_rate": 0.05}})
        orchestra.start_agent_health_monitoring("atlas-001")
        orchestra.on("agent_failure", orchestra.handle_emergency)
        await orchestra.enter_maintenance_mode()
        report = await orchestra.perform_system_maintenance()
        await orchestra.exit_maintenance_mode()
        diagnosis = await orchestra.run_system_diagnostics()
        analysis = await orchestra.analyze_performance_bottlenecks()
        health = await orchestra.perform_health_check()
        await orchestra.emergency_shutdown()

It relies on the facade's operations hooks (``checkpointer``, ``store``, ``thread_id``,
``pause_runs``/``resume_runs``, ``stop_intake``, ``emit``, ``submit_run``, ``state()``,
``registered_agents()``, ``now()``, ``app``, ``config``, ``stop_orchestration``) and reads a few
runtime facts through :mod:`stellar_graph.ops._hooks`. See ``docs/operations.md``.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from stellar_graph.board import FINISHED
from stellar_graph.errors import ConfigurationError, OrchestrationError
from stellar_graph.ops import _hooks
from stellar_graph.ops._maintain import MaintenanceMixin
from stellar_graph.ops._report import DiagnosticsMixin
from stellar_graph.ops.health import AgentHealthPolicy, agent_health, check_thresholds
from stellar_graph.ops.monitoring import AgentMonitor, ProcessSampler, SystemMonitor

__all__ = ["SET_AGENT_HEALTH", "OperationsMixin"]

logger = logging.getLogger(__name__)

SET_AGENT_HEALTH = "set_agent_health"
"""Graph input key that marks agents healthy or unhealthy (``[{"agent_id", "healthy", "reason"}]``)."""


class OperationsMixin(MaintenanceMixin, DiagnosticsMixin):
    """Health monitoring, emergencies, maintenance mode and diagnostics for the orchestra facade."""

    # -- health monitoring -----------------------------------------------------------------
    def start_health_monitoring(
        self,
        check_interval_seconds: float | Mapping[str, Any] = 30.0,
        alert_thresholds: Mapping[str, float] | None = None,
    ) -> SystemMonitor:
        """Sample this process's CPU and memory and the attempt error rate every interval.

        A ``system_alert`` event is emitted once when a value reaches its threshold and once
        when it is back below it (10% hysteresis). With ``emergency_protocols.auto_escalation``,
        an alert firing for 3 checks in a row, or a registry where no agent is healthy, goes
        to :meth:`handle_emergency`. Calling again replaces the running monitor.

        Args:
            check_interval_seconds: seconds between checks, or the seed's whole dict
                (``{"check_interval_seconds": 30, "alert_thresholds": {...}}``).
            alert_thresholds: ``cpu_usage`` (share of the machine's CPU used by this process),
                ``memory_usage`` (its resident memory over total RAM) and ``error_rate`` (failed
                or reassigned attempts over attempts, last 10 checks); defaults 0.8/0.85/0.05;
                ``None`` stops watching a metric.

        Returns:
            The monitor (``check()``, ``last_sample``, ``alerts``, ``summary()``).

        Raises:
            ConfigurationError: an unknown threshold, a value outside (0, 1], a bad interval,
                or psutil missing.
        """
        interval: Any = check_interval_seconds
        if isinstance(check_interval_seconds, Mapping):
            seed = dict(check_interval_seconds)
            unknown = sorted(set(seed) - {"check_interval_seconds", "alert_thresholds"})
            if unknown:
                raise ConfigurationError(
                    f"Unknown health monitoring setting(s) {unknown}. Fix: use `check_interval_seconds` "
                    "and `alert_thresholds`.",
                    field="start_health_monitoring",
                    value=unknown,
                )
            alert_thresholds = seed.get("alert_thresholds", alert_thresholds)
            interval = seed.get("check_interval_seconds", 30.0)
        if isinstance(interval, bool) or not isinstance(interval, int | float):
            raise ConfigurationError(
                f"check_interval_seconds = {interval!r} is not a number. Fix: give seconds, e.g. 30.",
                field="check_interval_seconds",
                value=interval,
            )
        ops = self._operations()
        monitor = SystemMonitor(
            interval=float(interval),
            thresholds=check_thresholds(alert_thresholds),
            sampler=ProcessSampler(),
            counters=lambda: self.state().get("metrics") or {},
            agents=self.registered_agents,
            emit=self.emit,
            escalate=self.handle_emergency
            if self.config.emergency_protocols.auto_escalation
            else None,
            clock=self.now,
        )
        if ops.system is not None:
            self._spawn(ops.system.aclose())
        ops.system = monitor
        monitor.start()
        return monitor

    def start_agent_health_monitoring(
        self,
        agent_id: str,
        *,
        check_interval_seconds: float = 30.0,
        policy: AgentHealthPolicy | None = None,
        recover_after_seconds: float | None = 1800.0,
    ) -> AgentMonitor:
        """Watch one agent: error rate, latency, consecutive agent errors and heartbeats.

        On each change of its status a ``system_alert`` of kind ``agent_health`` is emitted. An
        agent judged unhealthy is taken out of allocation (its unstarted queue goes back to the
        board) and, after ``recover_after_seconds`` out with a live heartbeat, let back in.

        Args:
            agent_id: a registered agent.
            check_interval_seconds: seconds between checks.
            policy: thresholds (default: ``AgentHealthPolicy`` with the configured
                ``task_allocation.agent_failure_threshold``).
            recover_after_seconds: cool-down before an agent that was taken out is let back in
                (``None``: never automatically).

        Returns:
            The monitor (``check()``, ``last_view``, ``status``).

        Raises:
            UnknownAgentError: the agent is not registered.
        """
        self.get_agent(agent_id)
        ops = self._operations()
        policy = policy or AgentHealthPolicy(
            consecutive_failures=self.config.task_allocation.agent_failure_threshold
        )
        monitor = AgentMonitor(
            agent_id,
            interval=check_interval_seconds,
            view=lambda since: self.agent_health(agent_id, since=since, policy=policy),
            set_health=self.mark_agent_health,
            emit=self.emit,
            clock=self.now,
            recover_after_seconds=recover_after_seconds,
        )
        if agent_id in ops.agents:
            self._spawn(ops.agents[agent_id].aclose())
        ops.agents[agent_id] = monitor
        monitor.start()
        return monitor

    def record_heartbeat(self, agent_id: str, at: datetime | None = None) -> None:
        """Note that an agent is alive (agents backed by outside services send these).

        Once an agent has sent a heartbeat, silence longer than the policy's
        ``heartbeat_timeout_seconds`` makes it unhealthy.

        Raises:
            UnknownAgentError: the agent is not registered.
        """
        self.get_agent(agent_id)
        self._operations().heartbeats[agent_id] = at or self.now()

    def agent_health(
        self,
        agent_id: str,
        *,
        since: datetime | None = None,
        policy: AgentHealthPolicy | None = None,
    ) -> dict[str, Any]:
        """The health view of one agent now (see :func:`stellar_graph.ops.health.agent_health`).

        Raises:
            UnknownAgentError: the agent is not registered.
        """
        record = self.get_agent(agent_id)
        policy = policy or AgentHealthPolicy(
            consecutive_failures=self.config.task_allocation.agent_failure_threshold
        )
        return agent_health(
            record, self.state().get("tasks") or {}, now=self.now(),
            heartbeat_at=self._operations().heartbeats.get(agent_id), since=since, policy=policy,
        )  # fmt: skip

    async def mark_agent_health(self, agent_id: str, healthy: bool, reason: str) -> None:
        """Take an agent out of allocation (its unstarted work goes back to the board) or let it back in.

        The change is a graph run (input ``set_agent_health``), queued behind earlier runs.

        Raises:
            OrchestrationError: the graph does not accept ``set_agent_health`` yet.
            UnknownAgentError: the agent is not registered.
        """
        from stellar_graph.state import OrchestraInput

        self.get_agent(agent_id)
        if SET_AGENT_HEALTH not in OrchestraInput.__annotations__:
            raise OrchestrationError(
                f"The orchestra graph has no `{SET_AGENT_HEALTH}` input, so agent health cannot be changed from "
                "outside a run. Fix: add the key to `OrchestraInput` and apply `stellar_graph.ops.health.health_update` in intake."
            )
        await self.submit_run(
            {SET_AGENT_HEALTH: [{"agent_id": agent_id, "healthy": healthy, "reason": reason}]}
        )

    async def stop_health_monitoring(self) -> None:
        """Stop the system monitor and every agent monitor."""
        ops = self._operations()
        monitors = [m for m in [ops.system, *ops.agents.values()] if m is not None]
        ops.system, ops.agents = None, {}
        for monitor in monitors:
            await monitor.aclose()

    # -- emergencies -----------------------------------------------------------------------
    async def handle_emergency(
        self, event: Mapping[str, Any] | None = None, **details: Any
    ) -> dict[str, Any]:
        """Record an emergency, emit it, and escalate it to the notification channels.

        Usable as an event handler (``orchestra.on("agent_failure", orchestra.handle_emergency)``).
        Delivery runs in the background, so a hanging channel never holds up the caller. With
        ``emergency_protocols.auto_escalation`` off the emergency is recorded and emitted only
        (a notifier whose ``events`` list ``emergency`` still receives it as an event).

        Args:
            event: what happened (an event dict; its ``type`` becomes the emergency's ``source``).
            **details: more fields (``reason``, ``severity``...).

        Returns:
            The emergency record: ``emergency_id``, ``source``, ``severity``, ``reason``,
            ``escalation`` (``status``: ``scheduled``, ``not_configured`` or ``disabled``,
            and the ``channels``).
        """
        source = {**dict(event or {}), **details}
        record: dict[str, Any] = {
            "type": "emergency",
            "emergency_id": f"emg-{uuid.uuid4().hex[:12]}",
            "at": self.now().isoformat(),
            "source": source.get("type", "manual"),
            "severity": source.get("severity", "critical"),
            "reason": str(
                source.get("reason")
                or source.get("message")
                or source.get("error")
                or source.get("type")
                or "unspecified"
            ),
            **{k: source[k] for k in ("agent_id", "task_id") if k in source},
        }
        record["escalation"] = self._escalate(record)
        self._operations().emergencies.append(record)
        logger.warning(
            "emergency %s from %s: %s", record["emergency_id"], record["source"], record["reason"]
        )
        if source.get("type") != "emergency":  # a handler of "emergency" calling us must not loop
            await self.emit(dict(record))
        return record

    def _escalate(self, record: dict[str, Any]) -> dict[str, Any]:
        protocols = self.config.emergency_protocols
        if not protocols.auto_escalation:
            return {"status": "disabled", "detail": "emergency_protocols.auto_escalation is false"}
        notifier = _hooks.notifier_of(self)
        if notifier is None:
            listed = list(protocols.notification_channels)
            fix = (
                "call configure_notifications(...)"
                if listed
                else "list channels in emergency_protocols.notification_channels, then call configure_notifications(...)"
            )
            return {"status": "not_configured", "channels": listed, "detail": f"no notifier: {fix}"}
        names = [channel.name for channel in notifier.channels]
        if "emergency" in notifier.events or "*" in notifier.events:
            return {
                "status": "scheduled",
                "channels": names,
                "via": "notifier",
            }  # it listens to every emitted event
        self._spawn(notifier.notify(dict(record)))
        return {"status": "scheduled", "channels": names, "via": "escalation"}

    def emergencies(self) -> list[dict[str, Any]]:
        """The last 100 emergencies handled by this process, oldest first."""
        return list(self._operations().emergencies)

    async def emergency_shutdown(
        self, reason: str = "emergency shutdown requested", *, cancel_in_flight: bool = True
    ) -> dict[str, Any]:
        """Stop now without losing accepted work; a restart on the same data and thread resumes it.

        Intake stops (later calls raise), the control run and the task runs in flight are
        cancelled (their finished steps are checkpointed; the agent calls they interrupted re-run
        on restart, where every task the state says is running resumes), runs queued but not
        started fail with ``OrchestrationError`` for their callers (never accepted, so nothing is
        lost silently), monitors stop, notifications are flushed, persistence closes.

        Args:
            reason: recorded in the ``emergency`` event.
            cancel_in_flight: ``False`` lets the run in flight finish first.

        Returns:
            ``emergency_id``, ``cancelled_run``, ``rejected_runs``, ``unfinished_tasks`` (ids),
            ``next`` (the nodes a restart resumes), ``resume`` (how to restart).
        """
        runtime = _hooks.runtime_status(self)
        record = await self.handle_emergency(
            {"type": "emergency_shutdown", "reason": reason, "severity": "critical"}
        )
        await self.stop_intake(cancel_current=cancel_in_flight)
        if cancel_in_flight and runtime["paused"]:
            # The run held by maintenance mode starts as intake stops: cancel it before it runs.
            await asyncio.sleep(0)
            while _hooks.runtime_status(self)["run_in_flight"]:
                await self.stop_intake(cancel_current=True)
                await asyncio.sleep(0.01)
        await _hooks.wait_quiet(self, None)
        await self.stop_health_monitoring()
        snapshot = await self.app.aget_state({"configurable": {"thread_id": self.thread_id}})
        tasks = (snapshot.values or {}).get("tasks") or {}
        await self.aclose_operations()
        await self.stop_orchestration()
        return {
            "emergency_id": record["emergency_id"],
            "reason": reason,
            "cancelled_run": bool(cancel_in_flight and (runtime["run_in_flight"] or runtime.get("task_runs_live"))),
            "rejected_runs": runtime["queued_requests"],  # queued task outcomes are kept
            "unfinished_tasks": sorted(
                t for t, r in tasks.items() if r.get("status") not in FINISHED
            ),
            "next": list(snapshot.next),
            "resume": f"start a StellarOrchestra with the same persistence and thread_id={self.thread_id!r}",
        }

    # -- lifecycle and internals -------------------------------------------------------------
    async def aclose_operations(self, grace_seconds: float | None = 5.0) -> None:
        """Stop the monitors, leave maintenance mode (held runs then proceed), and give
        escalations in flight ``grace_seconds`` before cancelling them.

        The facade calls this first in ``stop_orchestration``, before it waits for queued runs.
        """
        await self.stop_health_monitoring()
        # Held runs proceed before the close: accepted work is not dropped.
        if self.maintenance_mode:
            await self.exit_maintenance_mode()
        pending = list(self._operations().background)
        if not pending:
            return
        _, late = await asyncio.wait(pending, timeout=grace_seconds)
        for task in late:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
