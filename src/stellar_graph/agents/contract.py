"""The agent contract: what the orchestra sends an agent and what it must give back.

Every agent type's graph, the reference ones (:func:`~stellar_graph.agents.factory.create_agent`)
and users' own, is a graph with input :class:`AgentInput` and output :class:`AgentOutput`::

    input   {"task": {...Task...}, "agent": {...AgentProfile...}, "attempt": 1, "inbox": [...],
             "messages": [task message]}        # messages: for graphs built on a messages state
    output  {"report": {"status": "completed" | "failed", "result": str, "criteria_met": [...],
             "criteria_unmet": [...], "confidence": float | None, "usage": {...},
             "duration_minutes": float | None, "simulated": bool, "error": str | None, ...}}

A user's graph, Runnable, ``RemoteGraph`` or function (:func:`adapt_agent`) may return less: a
``{"report": {...}}``, an answer ``{"result": ..., "criteria_met": [...], "confidence": ...}``
(``"failure"`` to fail), a ``{"messages": [...]}`` state (the last message is the result), a
message or a string. The adapter turns any of these into the report, checking the task's success
criteria against ``criteria_met`` the same way for every agent: a plain string meets none.
:func:`stellar_graph.testing.check_agent_contract` runs an agent against the contract.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from langchain_core.messages import AnyMessage, BaseMessage, HumanMessage
from langchain_core.runnables import Runnable, RunnableLambda
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from pydantic import BaseModel, Field
from typing_extensions import TypedDict

from stellar_graph._inline import inline
from stellar_graph.agents.policy import AgentPolicy
from stellar_graph.agents.render import render_task_message
from stellar_graph.agents.spec import AgentSpec
from stellar_graph.errors import ModelBehaviorError
from stellar_graph.models import AgentProfile, Task
from stellar_graph.records import AGENT_CALLS_NAMESPACE

__all__ = [
    "AgentAnswer",
    "AgentInput",
    "AgentOutput",
    "AgentState",
    "adapt_agent",
    "agent_graph",
    "answer_from_output",
    "answered_once",
    "check",
    "report",
]


class AgentAnswer(BaseModel):
    """What an agent's LLM must return (structured output)."""

    result: str = Field(description="The work product: answer, design, analysis or review.")
    criteria_met: list[str] = Field(description="The success criteria this result satisfies.")
    confidence: float = Field(description="Self-assessed confidence in [0, 1].")


class AgentInput(TypedDict, total=False):
    """What the orchestra sends an agent for one attempt at one task."""

    task: dict[str, Any]
    agent: dict[str, Any]
    attempt: int
    inbox: list[dict[str, Any]]
    messages: list[AnyMessage]
    """The task message (for graphs whose state is a list of messages); the reference agents
    render their own system prompt and task message instead."""
    call_key: str
    """Set by the task graph: the model's answer is saved under this key in the Store
    (:data:`AGENT_CALLS_NAMESPACE`) and never asked for twice. Without it nothing is saved."""


class AgentOutput(TypedDict, total=False):
    """What an agent returns."""

    report: dict[str, Any]


class AgentState(AgentInput, AgentOutput, total=False):
    """The state inside an agent graph built here."""

    answer: dict[str, Any]
    usage: dict[str, int]
    simulated: bool
    started: float
    duration_minutes: float
    verdict: dict[str, Any]


def check(state: AgentState) -> dict[str, Any]:
    answer = state["answer"]
    if answer.get("failure"):
        return {"verdict": {"status": "failed", "error": answer["failure"]}}
    if not str(answer.get("result", "")).strip():
        return {"verdict": {"status": "failed", "error": "empty result"}}
    met = {c.strip().lower() for c in answer.get("criteria_met", [])}
    unmet = [c for c in state["task"].get("success_criteria") or [] if c.strip().lower() not in met]
    if unmet:
        return {"verdict": {"status": "failed", "error": f"success criteria not met: {unmet}", "criteria_unmet": unmet}}
    return {"verdict": {"status": "completed", "error": None}}


def report(state: AgentState) -> dict[str, Any]:
    answer, verdict = state["answer"], state["verdict"]
    return {
        "report": {
            "task_id": state["task"]["id"],
            "agent_id": state["agent"]["agent_id"],
            "status": verdict["status"],
            "error": verdict.get("error"),
            "result": answer.get("result", ""),
            "criteria_met": answer.get("criteria_met", []),
            "criteria_unmet": verdict.get("criteria_unmet", []),
            "confidence": answer.get("confidence"),
            "usage": state.get("usage", {}),
            "simulated": state.get("simulated", False),
            "duration_minutes": state.get("duration_minutes"),
            "finished_at": datetime.now(UTC).isoformat(),
        }
    }


async def answered_once(
    state: AgentState, runtime: Runtime[Any], work: Callable[[], Awaitable[dict[str, Any]]]
) -> dict[str, Any]:
    """``work()``'s answer, saved in the Store under the run's ``call_key``: after a crash the
    agent is not asked again (without a key or a Store nothing is saved)."""
    key, store = state.get("call_key"), runtime.store
    if key and store is not None:
        saved = await store.aget(AGENT_CALLS_NAMESPACE, key)
        if saved is not None:
            return dict(saved.value)
    answer = await work()
    if key and store is not None:
        await store.aput(AGENT_CALLS_NAMESPACE, key, answer, index=False)
    return answer


def answer_from_output(name: str, output: object) -> dict[str, Any]:
    """Turn whatever a user's agent returned into ``{"answer", "usage"}`` (see the module doc).

    Raises:
        ModelBehaviorError: the output has none of the accepted shapes; the message names the type,
            what came back and the shapes that work.
    """
    if isinstance(output, BaseMessage):
        return {"answer": {"result": output.text, "criteria_met": []}, "usage": _usage([output])}
    if isinstance(output, str):
        return {"answer": {"result": output, "criteria_met": []}, "usage": {}}
    if isinstance(output, Mapping):
        given = output.get("report")
        if isinstance(given, Mapping) and given.get("status") in ("completed", "failed"):
            answer = {k: given[k] for k in ("result", "criteria_met", "confidence") if k in given}
            if given["status"] == "failed":
                answer["failure"] = str(given.get("error") or "the agent reported a failure")
            return {"answer": _clean(name, answer), "usage": dict(given.get("usage") or {})}
        if "result" in output:
            return {"answer": _clean(name, dict(output)), "usage": dict(output.get("usage") or {})}
        messages = output.get("messages")
        if isinstance(messages, list) and messages and isinstance(messages[-1], BaseMessage):
            return {"answer": {"result": messages[-1].text, "criteria_met": []}, "usage": _usage(messages)}
    raise ModelBehaviorError(
        f"Agent type {name!r} returned {type(output).__name__} {str(output)[:120]!r}, which the agent "
        "contract does not accept. Fix: return {'report': {'status': 'completed'|'failed', 'result': ...}}, "
        "{'result': ..., 'criteria_met': [...]}, {'messages': [...]}, a message or a string.",
        agent=name,
        raw=str(output)[:2000],
    )


def _clean(name: str, answer: dict[str, Any]) -> dict[str, Any]:
    criteria = answer.get("criteria_met") or []
    if not isinstance(criteria, list | tuple) or not all(isinstance(c, str) for c in criteria):
        raise ModelBehaviorError(
            f"Agent type {name!r} returned criteria_met={criteria!r}; it must be a list of the task's "
            "success criteria (strings).",
            agent=name, raw=str(answer)[:2000],
        )
    out = {"result": str(answer.get("result") or ""), "criteria_met": list(criteria),
           "confidence": answer.get("confidence")}
    if answer.get("failure"):
        out["failure"] = str(answer["failure"])
    return out


def _usage(messages: list[Any]) -> dict[str, int]:
    usage = {"input_tokens": 0, "output_tokens": 0}
    for message in messages:
        meta = getattr(message, "usage_metadata", None) or {}
        usage["input_tokens"] += int(meta.get("input_tokens", 0))
        usage["output_tokens"] += int(meta.get("output_tokens", 0))
    return usage


def _defaults(model: type[BaseModel]) -> dict[str, Any]:
    """The optional fields' defaults as JSON values (what a validated dict holds)."""
    out = {}
    for name, field in model.model_fields.items():
        if not field.is_required():
            value = field.get_default(call_default_factory=True)
            out[name] = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
    return out


_TASK_DEFAULTS, _PROFILE_DEFAULTS = _defaults(Task), _defaults(AgentProfile)


def as_runnable(agent: object, name: str) -> Runnable[Any, Any]:
    """A Runnable for a user's agent: graphs, Runnables and ``RemoteGraph`` as they are, functions
    (sync or async) wrapped, an uncompiled ``StateGraph`` compiled."""
    if isinstance(agent, StateGraph):
        return agent.compile(name=name)
    if isinstance(agent, Runnable) or hasattr(agent, "ainvoke"):
        return agent  # type: ignore[return-value]  # RemoteGraph is a PregelProtocol, not a Runnable
    if callable(agent):
        return RunnableLambda(agent, name=name)
    raise ModelBehaviorError(
        f"Agent type {name!r}: graph={agent!r:.80} is not a graph, Runnable or function. Fix: pass a "
        "compiled LangGraph graph, a Runnable, a RemoteGraph or a function of the agent input.",
        agent=name,
    )


def adapt_agent(spec: AgentSpec, *, policy: AgentPolicy | None = None) -> StateGraph[Any, Any, Any, Any]:
    """Wrap a user's agent (``spec.graph``) in a graph that satisfies the contract::

        START -> act (the user's agent; RetryPolicy, TimeoutPolicy) -> check -> report -> END

    The user's agent receives the :class:`AgentInput` (with ``messages``); its answer is saved
    under ``call_key`` like the reference agents' model answers.
    """
    agent = as_runnable(spec.graph, spec.name)
    rules = policy or AgentPolicy()

    async def act(state: AgentState, runtime: Runtime[Any]) -> dict[str, Any]:
        async def work() -> dict[str, Any]:
            started = time.time()
            payload: dict[str, Any] = {"attempt": state.get("attempt", 1), "inbox": state.get("inbox") or []}
            # every documented key present, also for a task or instance sent from outside (/agents/<name>)
            payload["task"] = {**copy.deepcopy(_TASK_DEFAULTS), **state["task"]}
            payload["agent"] = {**copy.deepcopy(_PROFILE_DEFAULTS), **state["agent"]}
            payload["messages"] = [HumanMessage(render_task_message(state["task"], state.get("inbox") or []))]
            out = answer_from_output(spec.name, await agent.ainvoke(payload))
            return {**out, "simulated": False, "duration_minutes": round((time.time() - started) / 60, 4)}

        return await answered_once(state, runtime, work)

    return agent_graph(act, rules)


def agent_graph(act: Any, rules: AgentPolicy, *, plan: Any = None) -> StateGraph[Any, Any, Any, Any]:
    """The shape every agent graph built here has: ``[plan ->] act -> check -> report``, the
    ``act`` step under the policy's RetryPolicy and TimeoutPolicy."""
    builder = StateGraph(AgentState, input_schema=AgentInput, output_schema=AgentOutput)
    steps = ["plan", "act", "check", "report"] if plan is not None else ["act", "check", "report"]
    if plan is not None:
        builder.add_node("plan", plan)
    builder.add_node("act", act, retry_policy=rules.retry_policy(), timeout=rules.timeout_policy())
    builder.add_node("check", inline(check))
    builder.add_node("report", inline(report))
    for a, b in zip([START, *steps], [*steps, END], strict=True):
        builder.add_edge(a, b)
    return builder
