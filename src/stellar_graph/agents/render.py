"""Render an agent's messages: its system prompt and the task message (no LLM, no LangGraph)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from langchain_core.messages import AnyMessage, HumanMessage, SystemMessage

from stellar_graph.agents.spec import AgentSpec
from stellar_graph.prompts import PromptTemplate, load_prompt

__all__ = ["render_messages", "render_system_prompt", "render_task_message"]


def _agent_values(spec: AgentSpec, agent: dict[str, Any]) -> dict[str, str]:
    return {
        "agent_id": agent["agent_id"],
        "agent_name": spec.display_name,
        "capabilities": _listing(agent.get("capabilities")),
        "specializations": _listing(agent.get("specializations")),
    }


def render_system_prompt(spec: AgentSpec, agent: dict[str, Any]) -> str:
    """The system prompt of one agent instance (a spec whose prompt is a text template)."""
    template = spec.template if isinstance(spec.template, PromptTemplate) else load_prompt("agent")
    values = _agent_values(spec, agent)
    return template.render(**{k: v for k, v in values.items() if k in template.variables})


def render_task_message(task: dict[str, Any], inbox: Sequence[dict[str, Any]] = ()) -> str:
    """The task message an agent receives (also used for the task's token estimate)."""
    criteria = task.get("success_criteria") or []
    context = ""
    if inbox:
        lines = [f"- from {m.get('sender')}: {json.dumps(m.get('content'))}" for m in inbox]
        context = "\nMessages for you:\n" + "\n".join(lines) + "\n"
    return load_prompt("task").render(
        task_id=task["id"],
        description=task["description"],
        priority=task.get("priority", "medium"),
        deadline=task.get("deadline") or "none",
        success_criteria="\n".join(f"- {c}" for c in criteria) or "- (none given)",
        context=context,
    )


def render_messages(
    spec: AgentSpec, agent: dict[str, Any], task: dict[str, Any], inbox: Sequence[dict[str, Any]] = ()
) -> list[AnyMessage]:
    """The system and task messages an agent sends to its model.

    A ``ChatPromptTemplate`` prompt is formatted with the agent's values and ``task`` (the task
    message); when it does not place ``task`` itself, the task message follows it.
    """
    task_message = render_task_message(task, inbox)
    template = spec.template
    if template is None or isinstance(template, PromptTemplate):
        return [SystemMessage(render_system_prompt(spec, agent)), HumanMessage(task_message)]
    values = {**_agent_values(spec, agent), "task": task_message}
    messages: list[AnyMessage] = list(template.format_messages(**{k: values[k] for k in template.input_variables}))
    if "task" not in template.input_variables:
        messages.append(HumanMessage(task_message))
    return messages


def _listing(skills: object) -> str:
    if isinstance(skills, dict):
        return ", ".join(f"{k} ({v:g})" for k, v in skills.items()) or "none"
    if isinstance(skills, list | tuple):
        return ", ".join(str(s) for s in skills) or "none"
    return "none"
