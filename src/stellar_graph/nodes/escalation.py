"""``escalation``: the last rung of the recovery ladder — a human decides, through `interrupt()`.

Tasks whose ladder ended in ``escalating`` are shown to a human in one interrupt; the run pauses
(visible in the thread's state and in Studio) until it is resumed with
``Command(resume={task_id: decision})``. The node re-runs from its start on resume, so nothing
before the interrupt has side effects.
"""

from __future__ import annotations

from typing import Any

from langgraph.graph import END
from langgraph.types import Command, interrupt

from stellar_graph.recovery import ESCALATION_OPTIONS, apply_decisions
from stellar_graph.state import OrchestraState

__all__ = ["escalation"]


def _escalated(state: OrchestraState) -> dict[str, dict[str, Any]]:
    return {tid: t for tid, t in (state.get("tasks") or {}).items() if t.get("status") == "escalating"}


def escalation(state: OrchestraState) -> Command[Any]:
    """Ask a human about every escalated task; apply the answers; go back to the allocator."""
    escalated = _escalated(state)
    if not escalated:
        return Command(goto=END)
    decisions = interrupt({
        "type": "escalation",
        "options": list(ESCALATION_OPTIONS),
        "how": 'resume with {task_id: "retry" | {"action": "reassign", "agent_id": ...} | '
               '{"action": "fail", "reason": ...} | {"action": "resolve", "result": ...}}',
        "tasks": [
            {"task_id": tid, "description": t.get("description"), "agent_id": t.get("agent_id"),
             "error": t.get("error"), "recovery": t.get("recovery") or []}
            for tid, t in escalated.items()
        ],
    })
    patches, events = apply_decisions(escalated, decisions, agents=state.get("agents") or {})
    return Command(update={"tasks": patches, "events": events, "metrics": {"escalations_resolved": len(patches)}},
                   goto="allocator")
