"""``intake``: validate new agents and tasks and put them on the board."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from stellar_graph.agents.spec import AgentTypeRegistry
from stellar_graph.nodes import StateNode
from stellar_graph.ops.health import health_update
from stellar_graph.state import OrchestraState
from stellar_graph.submission import accept_agents, accept_tasks, check_strategy, known_agent_names

__all__ = ["make_intake"]


def make_intake(
    registry: AgentTypeRegistry, count_tokens: Callable[[str], int], clock: Callable[[], datetime]
) -> StateNode:
    """Build the intake node.

    It raises on bad input (the run stops before anything is written, so nothing already
    accepted changes) and clears the input keys so a later run does not see them again.
    """

    def intake(state: OrchestraState) -> dict[str, Any]:
        check_strategy(state.get("allocation_strategy"))
        agents = accept_agents(state.get("agents") or {}, state.get("register_agents") or [], registry, count_tokens)
        known = known_agent_names({**(state.get("agents") or {}), **agents}, registry)
        tasks = accept_tasks(
            state.get("tasks") or {}, state.get("submit_tasks") or [], count_tokens, now=clock(), known_agents=known
        )
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
