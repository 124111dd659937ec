"""``intake``: validate new agents and tasks and put them on the board."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.runtime import Runtime

from stellar_graph.agents.spec import AgentTypeRegistry
from stellar_graph.history import alookup
from stellar_graph.ops.health import health_update
from stellar_graph.state import OrchestraState
from stellar_graph.submission import (
    accept_agents,
    accept_tasks,
    check_strategy,
    known_agent_names,
    referenced_ids,
)

__all__ = ["make_intake"]


def make_intake(
    registry: AgentTypeRegistry, count_tokens: Callable[[str], int], clock: Callable[[], datetime]
) -> Callable[..., Any]:
    """Build the intake node.

    It raises on bad input (the run stops before anything is written, so nothing already
    accepted changes) and clears the input keys so a later run does not see them again.
    """

    async def intake(state: OrchestraState, config: RunnableConfig, runtime: Runtime[Any]) -> dict[str, Any]:
        check_strategy(state.get("allocation_strategy"))
        agents = accept_agents(state.get("agents") or {}, state.get("register_agents") or [], registry, count_tokens)
        known = known_agent_names({**(state.get("agents") or {}), **agents}, registry)
        raw = state.get("submit_tasks") or []
        thread = str((config.get("configurable") or {}).get("thread_id", ""))
        board = state.get("tasks") or {}
        history = await alookup(runtime.store, thread, [t for t in referenced_ids(raw) if t not in board])
        finished = {tid: str(item["task"].get("status")) for tid, item in history.items()}
        tasks = accept_tasks(board, raw, count_tokens, now=clock(), known_agents=known, finished=finished)
        update: dict[str, Any] = {
            "submit_tasks": [], "register_agents": [], "deliver_messages": [], "escalate_tasks": [], "set_agent_health": [],
        }
        health = health_update({**(state.get("agents") or {}), **agents}, state.get("tasks") or {}, state.get("set_agent_health") or [])
        mail = _mailbox_update(state)
        if mail:
            update["mailbox"] = mail
        update["agents"] = {**(health.get("agents") or {}), **agents}
        update["events"] = [*(health.get("events") or []), *({"type": "agent_registered", "agent_id": a} for a in agents)]
        board = state.get("tasks") or {}
        escalate = {tid: {"status": "escalating"} for tid in state.get("escalate_tasks") or [] if board.get(tid, {}).get("status") == "failed"}
        if tasks or escalate or health.get("tasks"):
            update["tasks"] = {**(health.get("tasks") or {}), **tasks, **escalate}
            update["metrics"] = {"tasks_submitted": len(tasks)}
        return update

    return intake


def _mailbox_update(state: OrchestraState) -> dict[str, dict[str, Any]]:
    """New bus messages into the agents' mailboxes, dropping ones already delivered or unknown."""
    seen = set(state.get("delivered_messages") or [])
    agents = state.get("agents") or {}
    boxes: dict[str, dict[str, Any]] = {}
    for item in state.get("deliver_messages") or []:
        agent_id, message = item["agent_id"], item["message"]
        if agent_id in agents and message["message_id"] not in seen:
            boxes.setdefault(agent_id, {})[message["message_id"]] = message
    return boxes
