"""Diagnostics half of the operations mixin: health check, system diagnostics, bottlenecks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stellar_graph.history import asummary
from stellar_graph.ops import _hooks
from stellar_graph.ops._base import OpsBase
from stellar_graph.ops.diagnostics import (
    agent_timings,
    bottleneck_report,
    overall_status,
    top_shares,
)
from stellar_graph.ops.maintenance import checkpoint_stats, file_sizes, merge_summaries, sqlite_file
from stellar_graph.persistence import resolved_backend, sqlite_paths

__all__ = ["DiagnosticsMixin"]

_PROBE_SECONDS = 5.0
_LARGE_FILE = 100 * 2**20


class DiagnosticsMixin(OpsBase):
    """``perform_health_check``, ``run_system_diagnostics``, ``analyze_performance_bottlenecks``."""

    async def perform_health_check(self) -> dict[str, Any]:
        """Each component's status (``ok``, ``degraded`` or ``down``) and the overall one (the worst).

        Components: ``persistence`` (the thread's latest checkpoint is readable), ``store``,
        ``worker`` (the run queue), ``agents``, ``bus``, ``event_handlers``, ``integrations``,
        ``monitoring``.
        """
        components = {
            "persistence": await self._probe(self.checkpointer.aget_tuple({"configurable": {"thread_id": self.thread_id}})),
            "store": await self._probe(self.store.aget(_hooks.STORE_NAMESPACE, "probe")) if self.store is not None else {"status": "ok", "detail": "no store"},
            "worker": self._worker_health(),
            "agents": self._agents_health(),
            "bus": self._bus_health(),
            "event_handlers": self._handlers_health(),
            "integrations": self._integrations_health(),
            "monitoring": self._monitoring_health(),
        }  # fmt: skip
        return {
            "status": overall_status(c["status"] for c in components.values()),
            "at": self.now().isoformat(),
            "components": components,
        }

    async def run_system_diagnostics(self) -> dict[str, Any]:
        """Everything an operator asks first, in one dict, with ``findings`` in plain language.

        Keys: ``status`` and ``components`` (the health check), ``config``, ``runtime``,
        ``agents`` (health views), ``metrics``, ``storage`` (files, checkpoint rows),
        ``bus``, ``integrations``, ``monitoring``, ``maintenance``, ``emergencies``, ``findings``.
        """
        health = await self.perform_health_check()
        ops = self._operations()
        storage = {
            "backend": type(self.checkpointer).__name__,
            "files": await self._storage_sizes(),
            "checkpoints": await checkpoint_stats(self.checkpointer, self.thread_id),
        }
        report = {
            "status": health["status"],
            "at": health["at"],
            "components": health["components"],
            "config": self._config_summary(),
            "runtime": {**_hooks.runtime_status(self), "maintenance_mode": self.maintenance_mode},
            "agents": {a: self.agent_health(a) for a in self.registered_agents()},
            "metrics": self.get_performance_metrics(),
            "storage": storage,
            "bus": self.message_bus.metrics(),
            "integrations": self.integration_stats(),
            "monitoring": {
                "system": ops.system.summary() if ops.system is not None else None,
                "agents": {
                    a: {"running": m.running, "status": m.status} for a, m in ops.agents.items()
                },
            },
            "maintenance": {
                "since": ops.maintenance_since.isoformat() if ops.maintenance_since else None,
                "last": ops.last_maintenance,
            },
            "emergencies": self.emergencies()[-10:],
        }
        report["findings"] = _findings(report)
        return report

    async def analyze_performance_bottlenecks(self, *, top: int = 5) -> dict[str, Any]:
        """Where the time goes: graph nodes (from checkpoint history) and agents (from task reports).

        Node timings accumulate in the Store across calls, restarts and maintenance (which
        collects them before pruning the history); agent timings include tasks already pruned.

        Args:
            top: how many contributors to list per ranking.

        Returns:
            ``nodes`` and ``agents`` (``total_seconds`` and ``top``: name, seconds, share,
            mean), ``findings``, and ``steps_analyzed``.
        """
        nodes = await self._collect_node_timings()
        doc = await self._load_doc()
        retired = merge_summaries(doc.get("pruned"), await asummary(self.store, self.thread_id))
        agents = agent_timings(self.state().get("tasks") or {}, retired)
        node_rank = top_shares(nodes, "node", count="steps", top=top)
        agent_rank = top_shares(agents, "agent_id", count="tasks", top=top)
        return {
            "nodes": node_rank,
            "agents": agent_rank,
            "findings": bottleneck_report(node_rank, agent_rank, len(self.registered_agents())),
            "steps_analyzed": int(sum(r["steps"] for r in nodes.values())),
        }

    # -- internals -------------------------------------------------------------------------
    async def _collect_node_timings(self) -> dict[str, dict[str, float]]:
        """Add the control runs' node timings measured since the last collection to the stored totals."""
        doc = await self._load_doc()
        totals: dict[str, dict[str, float]] = {k: dict(v) for k, v in (doc.get("nodes") or {}).items()}
        fresh = self.take_node_timings()
        if not fresh:
            return totals
        for name, row in fresh.items():
            into = totals.setdefault(name, {"seconds": 0.0, "steps": 0})
            into["seconds"] += row["seconds"]
            into["steps"] += row["steps"]
        doc["nodes"] = totals
        await self._save_doc(doc)
        return totals

    async def _storage_sizes(self) -> dict[str, int]:
        paths: dict[str, Path] = {}
        for name, part in (("checkpoints", self.checkpointer), ("store", self.store)):
            found = await sqlite_file(part)
            if found is not None:
                paths[name] = found
        if resolved_backend(self.config.persistence) == "sqlite":
            paths["bus"] = sqlite_paths(self.config.persistence)[0].with_name("bus.sqlite")
        return file_sizes(paths)

    async def _probe(self, call: Any) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            await asyncio.wait_for(call, _PROBE_SECONDS)
        except Exception as exc:  # any failure to read is the finding, not a crash
            return {"status": "down", "detail": f"{type(exc).__name__}: {exc}"}
        return {"status": "ok", "latency_ms": round((time.perf_counter() - started) * 1000, 2)}

    def _worker_health(self) -> dict[str, Any]:
        run = _hooks.runtime_status(self)
        if not run["intake_open"]:
            return {"status": "down", "detail": "intake stopped (emergency shutdown)", **run}
        if not run["worker_alive"]:
            return {"status": "down", "detail": "the run worker is not running", **run}
        if run["paused"]:
            return {
                "status": "degraded",
                "detail": f"maintenance mode: {run['queued_runs']} run(s) held",
                **run,
            }
        return {"status": "ok", **run}

    def _agents_health(self) -> dict[str, Any]:
        agents = self.registered_agents()
        out = sorted(a for a, r in agents.items() if r.get("healthy", True) is False)
        counts = {"registered": len(agents), "unhealthy": out}
        if not agents:
            return {
                "status": "degraded",
                "detail": "no agents registered: tasks cannot be allocated",
                **counts,
            }
        if len(out) == len(agents):
            return {"status": "down", "detail": "no healthy agent", **counts}
        return {"status": "degraded" if out else "ok", **counts}

    def _bus_health(self) -> dict[str, Any]:
        metrics = self.message_bus.metrics()
        limit = self.config.messaging.priority_queue_size
        if metrics.get("queue_depth", 0) >= 0.9 * limit:
            return {
                "status": "degraded",
                "detail": f"queue depth {metrics['queue_depth']} near its limit {limit}",
                **metrics,
            }
        return {"status": "ok", **metrics}

    def _handlers_health(self) -> dict[str, Any]:
        errors = _hooks.runtime_status(self)["handler_errors"]
        if errors:
            return {
                "status": "degraded",
                "errors": errors,
                "detail": f"{errors} event handler call(s) raised (logged; orchestration went on)",
            }
        return {"status": "ok", "errors": 0}

    def _integrations_health(self) -> dict[str, Any]:
        stats = self.integration_stats()
        failed = (stats.get("webhooks") or {}).get("failed", 0)
        failed += sum(
            v.get("failed", 0)
            for k, v in (stats.get("notifications") or {}).items()
            if isinstance(v, Mapping)
        )
        if failed:
            return {"status": "degraded", "detail": f"{failed} delivery(ies) failed", **stats}
        return {"status": "ok", **stats}

    def _monitoring_health(self) -> dict[str, Any]:
        system = self._operations().system
        if system is None:
            return {"status": "ok", "detail": "health monitoring not started"}
        firing = sorted(system.tracker.firing)
        if firing:
            return {"status": "degraded", "detail": f"alerts firing: {firing}", "firing": firing}
        return {"status": "ok", "firing": []}

    def _config_summary(self) -> dict[str, Any]:
        cfg = self.config
        return {
            "orchestration_mode": cfg.orchestration_mode,
            "strategy": cfg.task_allocation.strategy,
            "weights": dict(cfg.task_allocation.weights),
            "max_attempts": cfg.task_allocation.max_attempts,
            "agent_failure_threshold": cfg.task_allocation.agent_failure_threshold,
            "persistence": {
                "backend": cfg.persistence.backend,
                "durability": cfg.persistence.durability,
            },
            "model": cfg.llm.model or ("simulated" if self.simulated else "custom chat model"),
            "emergency_protocols": cfg.emergency_protocols.model_dump(),
        }


def _findings(report: Mapping[str, Any]) -> list[str]:
    found = [
        f"{name}: {c.get('detail', c['status'])}"
        for name, c in report["components"].items()
        if c["status"] != "ok"
    ]
    for agent_id, view in report["agents"].items():
        if view["status"] != "healthy":
            found.append(f"agent {agent_id} is {view['status']}: {'; '.join(view['reasons'])}")
    rows = (report["storage"]["checkpoints"] or {}).get("checkpoints", 0)
    biggest = max(report["storage"]["files"].values(), default=0)
    if rows > 1000 or biggest > _LARGE_FILE:
        found.append(
            f"{rows} checkpoints, largest file {biggest / 2**20:.1f} MiB: run perform_system_maintenance()"
        )
    return found
