"""`create_task_graph`: one run per task attempt, on its own thread, the agent subgraph inside.

::

    START → begin ─(the instance's agent type)→ atlas | edison | lilith | pythagoras | … → finish → END
                                                   └─ error_handler (agent error) ──────┘

Each agent type is a compiled subgraph node (Studio shows it expanded); its LLM step carries
LangGraph's ``RetryPolicy`` and ``TimeoutPolicy``. When an agent still fails after its retries
(HTTP errors, timeouts, garbage replies), the node's ``error_handler`` turns the exception into a
failed report marked ``agent_error``: the control graph then decides between reassign, fallback
and escalate. A run checkpoints once, at its end (``persistence.durability = "exit"``; ``sync`` checkpoints every
step, the agent's own in its namespace); a run cut short by a crash starts again from its input and
the agent's model is not asked again: its answer was saved in the Store when the call returned
(``AGENT_CALLS_NAMESPACE``, keyed by the run's thread).
``finish`` also sends the outcome to the orchestra when the run was started by the
:class:`~stellar_graph.runtime.ServerRunner` (the in-process runner delivers it itself).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import RunnableConfig
from langgraph.config import get_store
from langgraph.errors import NodeError
from langgraph.graph import END, START, StateGraph
from langgraph.store.base import BaseStore
from langgraph.types import Command
from typing_extensions import TypedDict

from stellar_graph._inline import inline
from stellar_graph.agents.factory import ToolsProvider, compile_agents
from stellar_graph.agents.policy import AgentPolicy
from stellar_graph.agents.spec import AgentSpec, AgentTypeRegistry, agent_specs
from stellar_graph.board import utc_now
from stellar_graph.config import OrchestraConfig
from stellar_graph.llm import ChatModels
from stellar_graph.records import TaskOutcome, TaskRunInput
from stellar_graph.runtime.outbox import apost

__all__ = ["TaskRunOutput", "TaskRunState", "create_task_graph"]


class TaskRunOutput(TypedDict, total=False):
    """What a task run returns: the agent's report, stamped with the run's timings."""

    report: dict[str, Any]


class TaskRunState(TaskRunInput, TaskRunOutput, total=False):
    """The checkpointed state of one task run."""

    started_at: str
    call_key: str
    """The run's thread id: the agent saves its model's answer under it (``AGENT_CALLS_NAMESPACE``)."""
    began: float
    """Wall time (``time.time()``) at ``begin``: ``wall_seconds`` is measured, not taken from ``clock``."""


TaskGraph = StateGraph[TaskRunState, None, TaskRunInput, TaskRunOutput]


def create_task_graph(
    config: OrchestraConfig | Mapping[str, Any] | str | None = None,
    *,
    model: BaseChatModel | None = None,
    agents: Sequence[AgentSpec] | None = None,
    seed: int = 0,
    clock: Callable[[], datetime] = utc_now,
    extra_tools: ToolsProvider | None = None,
) -> TaskGraph:
    """Build the task graph: one agent subgraph node per agent type.

    Args:
        config: the orchestra config (the agents' retry and timeout come from
            ``emergency_protocols``).
        model: the agents' chat model; ``None`` simulates the work (seeded, no network).
        agents: the agent types (default the reference team), besides those
            ``config.agent_types`` declares.
        seed: simulation seed.
        clock: stamps ``started_at``/``finished_at`` (the orchestra's time source).
        extra_tools: tools every agent may call besides its spec's (read at each attempt).

    Returns:
        An uncompiled ``StateGraph``; input :class:`TaskRunInput`, output :class:`TaskRunOutput`.

    Example:
        >>> from langgraph.checkpoint.memory import InMemorySaver
        >>> app = create_task_graph().compile(checkpointer=InMemorySaver())
    """
    cfg = OrchestraConfig.load(config)
    registry = AgentTypeRegistry(agent_specs(cfg.agent_types, agents))
    policy = AgentPolicy.from_config(cfg.emergency_protocols, simulated_seconds=cfg.llm.simulated_seconds)
    names = [spec.name for spec in registry.specs]

    def begin(state: TaskRunState, config: RunnableConfig) -> Command[str]:
        """Stamp the start and go to the instance's agent type."""
        thread = str((config.get("configurable") or {}).get("thread_id", ""))
        update = {"started_at": clock().isoformat(), "began": time.time(), "call_key": thread}
        return Command(update=update, goto=str(state["agent"]["agent_node"]))

    def agent_failed(state: TaskRunState, error: NodeError) -> Command[Any]:
        """An agent that raised after its retries: a failed report the control graph recovers."""
        exc = error.error  # its text is already free of the model's credentials (agents.factory)
        report = {
            "task_id": state["task"]["id"], "agent_id": state["agent"]["agent_id"], "status": "failed",
            "agent_error": True, "error": f"{type(exc).__name__}: {exc}", "result": "", "usage": {},
            "simulated": False,
        }
        return Command(update={"report": report}, goto="finish")

    async def finish(state: TaskRunState, config: RunnableConfig) -> dict[str, Any]:
        """Stamp the report; under the LangGraph API server, post it for the orchestra's thread."""
        wall = time.time() - state.get("began", time.time())
        report = {**state["report"], "started_at": state.get("started_at"), "finished_at": clock().isoformat(),
                  "wall_seconds": round(max(wall, 0.0), 4)}
        target = state.get("report_to")
        if target:
            outcome = TaskOutcome(task_id=state["task"]["id"], attempt=state.get("attempt", 1),
                                  thread_id=str((config.get("configurable") or {}).get("thread_id")), report=report)
            await _report_back(get_store(), target, outcome)
        return {"report": report}

    builder: TaskGraph = StateGraph(TaskRunState, input_schema=TaskRunInput, output_schema=TaskRunOutput)
    builder.add_node("begin", inline(begin), destinations=tuple(names))
    compiled = compile_agents(registry.specs, model=model, seed=seed, extra_tools=extra_tools, policy=policy,
                              models=ChatModels(cfg.llm))
    for name, agent in compiled.items():
        builder.add_node(name, agent, error_handler=inline(agent_failed))
        builder.add_edge(name, "finish")
    builder.add_node("finish", finish)
    builder.add_edge(START, "begin")
    builder.add_edge("finish", END)
    return builder


async def _report_back(store: BaseStore | None, target: Mapping[str, str], outcome: TaskOutcome) -> None:
    """Post the outcome, then make sure a control run will collect it: enqueue one on the
    orchestra's thread unless one is pending (it has not started, so it will see this post)."""
    from langgraph_sdk import get_client

    client = get_client()
    thread, assistant = target["thread_id"], target["assistant_id"]
    if store is None:  # no Store: the outcome travels as the run's input
        event: dict[str, Any] = {"task_outcomes": [dict(outcome)]}
        await client.runs.create(thread, assistant, input=event, multitask_strategy="enqueue")
        return
    await apost(store, thread, outcome)
    if await client.runs.list(thread, status="pending", limit=1):
        return
    await client.runs.create(thread, assistant, input={"task_outcomes": []}, multitask_strategy="enqueue")
