"""The agent factory: one subgraph per agent type, from a spec, a prompt file and tools.

An agent subgraph runs ``plan -> act -> check -> report``:

- **plan** renders the agent's system prompt and the task message (no LLM call);
- **act** makes the agent's one LLM call with structured output (tool rounds first when the
  agent has tools), or simulates the work when no model is configured;
- **check** compares the answer with the task's success criteria (deterministic);
- **report** returns the structured report the orchestra records.

The graphs satisfy the agent contract (:mod:`stellar_graph.agents.contract`); a spec with its
own ``graph`` is adapted to it instead (:func:`~stellar_graph.agents.contract.adapt_agent`).
The model is the instance's (``AgentProfile.model``), else the type's (``AgentSpec.model``), else
the orchestra's; none of them means simulated work.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.exceptions import OutputParserException
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage, ToolMessage
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langgraph.graph import StateGraph
from langgraph.runtime import Runtime
from pydantic import ValidationError

from stellar_graph._inline import inline
from stellar_graph.agents.contract import (
    AgentAnswer,
    AgentInput,
    AgentOutput,
    AgentState,
    adapt_agent,
    agent_graph,
    answered_once,
)
from stellar_graph.agents.policy import AgentPolicy, is_retryable, retry_after_seconds
from stellar_graph.agents.render import render_messages
from stellar_graph.agents.spec import AgentSpec
from stellar_graph.errors import ModelBehaviorError
from stellar_graph.integrations._redact import redact_secrets
from stellar_graph.llm import ChatModels, model_secrets
from stellar_graph.simulation import simulate_work

__all__ = ["AgentAnswer", "AgentInput", "AgentOutput", "compile_agents", "create_agent"]

MAX_TOOL_ROUNDS = 5


ToolsProvider = Callable[[], Sequence[BaseTool]]


def create_agent(
    spec: AgentSpec,
    *,
    model: BaseChatModel | None,
    seed: int = 0,
    extra_tools: ToolsProvider | None = None,
    policy: AgentPolicy | None = None,
    models: ChatModels | None = None,
) -> StateGraph[Any, Any, Any, Any]:
    """Build the (uncompiled) subgraph of one agent type.

    Args:
        spec: the agent type; with ``spec.graph`` set, that agent adapted to the contract.
        model: the orchestra's chat model, used unless the type or the instance names its own;
            ``None`` (and no model named) simulates the work (seeded, no network).
        seed: simulation seed.
        extra_tools: called at each attempt for tools added after the graph was built (for
            example external APIs registered on the facade); they join ``spec.tools``.
        policy: retries and time limit of the LLM step (LangGraph ``RetryPolicy``/``TimeoutPolicy``).
        models: builds the models types and instances name (``ChatModels(config.llm)``); default
            one from the default ``llm`` config.

    Returns:
        A ``StateGraph`` with input :class:`AgentInput` and output :class:`AgentOutput`.

    Example:
        >>> from stellar_graph.agents.spec import ATLAS
        >>> graph = create_agent(ATLAS, model=None).compile()
    """

    if spec.graph is not None:
        return adapt_agent(spec, policy=policy)
    named = models or ChatModels()
    default = named(spec.model) if isinstance(spec.model, str) else spec.model or model

    def plan(state: AgentState) -> dict[str, Any]:
        messages = render_messages(spec, state["agent"], state["task"], state.get("inbox") or [])
        return {"messages": messages, "started": time.time()}

    rules = policy or AgentPolicy()
    structured: dict[int, Runnable[Any, Any]] = {}  # per model, built once

    async def act(state: AgentState, runtime: Runtime[Any]) -> dict[str, Any]:
        chosen = named(state["agent"]["model"]) if state["agent"].get("model") else default
        if chosen is None:  # simulated work is seeded: running it again gives the same answer
            if rules.simulated_seconds:
                await asyncio.sleep(rules.simulated_seconds)
            return _simulate(state, seed)
        # answered before a crash: the model is not asked again
        return await answered_once(state, runtime, lambda: _attempt(chosen, state, runtime))

    async def _attempt(chosen: BaseChatModel, state: AgentState, runtime: Runtime[Any]) -> dict[str, Any]:
        tools = [*spec.tools, *(extra_tools() if extra_tools else ())]
        if id(chosen) not in structured:
            structured[id(chosen)] = _structured(chosen)
        try:
            return await _call_model(chosen, structured[id(chosen)], tools, state)
        except Exception as exc:
            _redact_exception(exc, model_secrets(chosen))  # LangGraph saves the error's text in the checkpoint
            delay = retry_after_seconds(exc)
            attempt = runtime.execution_info.node_attempt if runtime.execution_info else rules.max_attempts
            if delay and attempt < rules.max_attempts and is_retryable(exc):
                await asyncio.sleep(min(delay, rules.max_retry_after))  # the provider asked us to wait
            raise

    return agent_graph(act, rules, plan=inline(plan))


def compile_agents(
    specs: Sequence[AgentSpec],
    *,
    model: BaseChatModel | None,
    seed: int = 0,
    extra_tools: ToolsProvider | None = None,
    policy: AgentPolicy | None = None,
    models: ChatModels | None = None,
) -> dict[str, Any]:
    """Each agent type's compiled graph, by node name (see :func:`create_agent`)."""
    named = models or ChatModels()
    return {
        spec.name: create_agent(
            spec, model=model, seed=seed, extra_tools=extra_tools, policy=policy, models=named
        ).compile(name=spec.name)
        for spec in specs
    }


def _redact_exception(exc: BaseException, secrets: Sequence[str]) -> None:
    """Blank the model's credentials out of an exception's text, in place (its type, which the
    retry policy reads, stays): an endpoint may echo the API key in its error body."""
    if not secrets:
        return
    exc.args = tuple(redact_secrets(a, secrets) if isinstance(a, str) else a for a in exc.args)
    if isinstance(getattr(exc, "message", None), str):
        exc.message = redact_secrets(exc.message, secrets)  # type: ignore[attr-defined]
    if getattr(exc, "body", None) is not None:
        exc.body = None  # type: ignore[attr-defined]  # the raw body: nothing here needs it


def _simulate(state: AgentState, seed: int) -> dict[str, Any]:
    outcome = simulate_work(state["task"], state["agent"], attempt=state.get("attempt", 1), seed=seed)
    answer = {"result": outcome.result, "criteria_met": outcome.criteria_met, "confidence": outcome.confidence}
    if not outcome.success:
        answer["failure"] = f"simulated failure (p_success={outcome.p_success:.2f})"
    return {"answer": answer, "usage": {}, "simulated": True, "duration_minutes": outcome.duration_minutes}


def _structured(model: BaseChatModel) -> Runnable[Any, Any]:
    """The model with structured output, built once per agent type.

    OpenAI models get JSON mode: the task message already shows the reply's shape, which costs
    about a third of the tokens of sending the JSON schema with every call (BENCHMARKS.md).
    Other chat models use their default structured-output method.
    """
    if getattr(model, "_llm_type", "") == "openai-chat":
        return model.with_structured_output(AgentAnswer, method="json_mode", include_raw=True)
    return model.with_structured_output(AgentAnswer, include_raw=True)


async def _call_model(
    model: BaseChatModel, structured: Runnable[Any, Any] | None, tools: Sequence[BaseTool], state: AgentState
) -> dict[str, Any]:
    messages: list[AnyMessage] = list(state["messages"])
    usage = {"input_tokens": 0, "output_tokens": 0}
    if tools:
        messages = await _tool_rounds(model, tools, messages, usage)
    structured = structured or _structured(model)
    agent_id = state["agent"]["agent_id"]
    parsed, error, raw = await _ask(structured, messages, usage)
    if parsed is None:  # one repair call: the reply, what was wrong, and the schema
        messages = [*messages, AIMessage(content=raw), HumanMessage(content=_repair_prompt(error))]
        parsed, error, raw = await _ask(structured, messages, usage)
        usage["repair_calls"] = 1
    if parsed is None:
        raise _garbage(agent_id, error, raw)
    minutes = (time.time() - state.get("started", time.time())) / 60
    return {"answer": parsed.model_dump(), "usage": usage, "simulated": False, "duration_minutes": round(minutes, 4)}


async def _tool_rounds(model: BaseChatModel, tool_list: Sequence[BaseTool], messages: list[AnyMessage], usage: dict[str, int]) -> list[AnyMessage]:
    tools = {t.name: t for t in tool_list}
    bound = model.bind_tools(list(tool_list))
    for _ in range(MAX_TOOL_ROUNDS):
        reply = await bound.ainvoke(messages)
        _add_usage(usage, reply)
        messages.append(reply)
        if not isinstance(reply, AIMessage) or not reply.tool_calls:
            break
        for call in reply.tool_calls:
            tool = tools.get(call["name"])
            content = await tool.ainvoke(call["args"]) if tool else f"unknown tool {call['name']!r}"
            messages.append(ToolMessage(content=str(content), tool_call_id=call["id"] or ""))
    return messages


async def _ask(
    structured: Runnable[Any, Any], messages: list[AnyMessage], usage: dict[str, int]
) -> tuple[AgentAnswer | None, object, str]:
    """One structured call: ``(answer, None, raw)``, or ``(None, the parsing error, raw reply)``."""
    try:
        out: dict[str, Any] = dict(await structured.ainvoke(messages))  # include_raw=True: a dict
    except (ValidationError, OutputParserException, ValueError) as exc:
        # Some providers parse inside the client and raise instead of reporting `parsing_error`.
        return None, exc, ""
    raw = out.get("raw")
    _add_usage(usage, raw)
    parsed = out.get("parsed")
    if out.get("parsing_error") is None and isinstance(parsed, AgentAnswer):
        return parsed, None, ""
    text = raw.content if isinstance(raw, AIMessage) else repr(raw)
    return None, out.get("parsing_error") or "the reply is not an AgentAnswer", str(text)


def _repair_prompt(error: object) -> str:
    schema = json.dumps(AgentAnswer.model_json_schema())
    return (
        f"Your reply could not be used: {error!s:.500}. Answer again with only a JSON object that "
        f"matches this JSON schema, no other text: {schema}"
    )


def _garbage(agent_id: str, error: object, raw: object) -> ModelBehaviorError:
    return ModelBehaviorError(
        f"Agent {agent_id!r} got a reply that is not a valid AgentAnswer ({error!s:.300}). "
        "Fix: use a model that supports structured output, or check the endpoint's response.",
        agent=agent_id,
        raw=str(raw),
    )


def _add_usage(usage: dict[str, int], message: object) -> None:
    meta = getattr(message, "usage_metadata", None) or {}
    usage["input_tokens"] += int(meta.get("input_tokens", 0))
    usage["output_tokens"] += int(meta.get("output_tokens", 0))


