"""Operations: health monitoring, emergencies, maintenance and diagnostics for the orchestra.

:class:`OperationsMixin` adds the seed's operations calls to the facade
(``start_health_monitoring``, ``handle_emergency``, ``emergency_shutdown``,
``enter_maintenance_mode``/``perform_system_maintenance``/``exit_maintenance_mode``,
``run_system_diagnostics``, ``analyze_performance_bottlenecks``, ``perform_health_check``).
The pure parts (health scoring, alert hysteresis, prune plans, timing shares) live in
:mod:`~stellar_graph.ops.health`, :mod:`~stellar_graph.ops.maintenance` and
:mod:`~stellar_graph.ops.diagnostics`. See ``docs/operations.md``.
"""

from __future__ import annotations

from stellar_graph.ops.facade import SET_AGENT_HEALTH, OperationsMixin
from stellar_graph.ops.health import AgentHealthPolicy, AlertTracker, agent_health, health_update
from stellar_graph.ops.maintenance import BoardPrunePlan, plan_board_prune, prune_checkpoints
from stellar_graph.ops.monitoring import AgentMonitor, ProcessSampler, SystemMonitor

__all__ = [
    "SET_AGENT_HEALTH",
    "AgentHealthPolicy",
    "AgentMonitor",
    "AlertTracker",
    "BoardPrunePlan",
    "OperationsMixin",
    "ProcessSampler",
    "SystemMonitor",
    "agent_health",
    "health_update",
    "plan_board_prune",
    "prune_checkpoints",
]
