"""Shared state and facade members of the operations mixins."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from stellar_graph.ops import _hooks

if TYPE_CHECKING:
    from stellar_graph.config import OrchestraConfig
    from stellar_graph.ops.health import AgentHealthPolicy
    from stellar_graph.ops.monitoring import AgentMonitor, SystemMonitor

__all__ = ["OpsBase"]


@dataclass
class _Operations:
    """What the operations mixins keep per facade instance (not checkpointed)."""

    system: SystemMonitor | None = None
    agents: dict[str, AgentMonitor] = field(default_factory=dict)
    heartbeats: dict[str, datetime] = field(default_factory=dict)
    maintenance_since: datetime | None = None
    last_maintenance: dict[str, Any] | None = None
    emergencies: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=100))
    background: set[asyncio.Task[Any]] = field(default_factory=set)
    doc: dict[str, Any] = field(default_factory=dict)
    """The operations document when there is no Store."""


class OpsBase:
    """The facade members the operations mixins use, and their per-instance state."""

    if TYPE_CHECKING:
        config: OrchestraConfig
        thread_id: str

        @property
        def app(self) -> Any: ...
        @property
        def checkpointer(self) -> Any: ...
        @property
        def store(self) -> Any: ...
        @property
        def message_bus(self) -> Any: ...
        @property
        def simulated(self) -> bool: ...
        @property
        def runs_paused(self) -> bool: ...
        def pause_runs(self) -> None: ...
        def resume_runs(self) -> None: ...
        async def stop_intake(self, *, cancel_current: bool) -> None: ...
        async def emit(self, event: dict[str, Any]) -> None: ...
        async def submit_run(self, payload: Mapping[str, Any]) -> None: ...
        async def stop_orchestration(self) -> None: ...
        def state(self) -> dict[str, Any]: ...
        def registered_agents(self) -> dict[str, dict[str, Any]]: ...
        def get_agent(self, agent_id: str) -> dict[str, Any]: ...
        def get_performance_metrics(self) -> dict[str, Any]: ...
        def integration_stats(self) -> dict[str, Any]: ...
        def now(self) -> datetime: ...
        def agent_health(
            self,
            agent_id: str,
            *,
            since: datetime | None = None,
            policy: AgentHealthPolicy | None = None,
        ) -> dict[str, Any]: ...
        def emergencies(self) -> list[dict[str, Any]]: ...
        @property
        def maintenance_mode(self) -> bool: ...
        async def _storage_sizes(self) -> dict[str, int]: ...
        async def _collect_node_timings(self) -> dict[str, dict[str, float]]: ...
        def take_node_timings(self) -> dict[str, dict[str, float]]: ...

    def _operations(self) -> _Operations:
        found = self.__dict__.get("_stellar_operations")
        if found is None:
            found = self.__dict__["_stellar_operations"] = _Operations()
        return found

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        background = self._operations().background
        background.add(task)
        task.add_done_callback(background.discard)

    async def _load_doc(self) -> dict[str, Any]:
        if self.store is None:
            return dict(self._operations().doc)
        return await _hooks.load_doc(self.store, self.thread_id)

    async def _save_doc(self, doc: dict[str, Any]) -> None:
        if self.store is None:
            self._operations().doc = dict(doc)
        else:
            await _hooks.save_doc(self.store, self.thread_id, doc)
