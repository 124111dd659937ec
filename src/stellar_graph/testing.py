"""Test helpers: a scripted chat model and OpenAI wire-format builders.

Two ways to test code that talks to an LLM without a network:

* :class:`ScriptedChatModel` is a LangChain chat model that replays a fixed script of answers
  (messages, strings, exceptions or callables), records every prompt it receives and can be
  bound to tools or wrapped in ``with_structured_output`` like a real provider model.
* :func:`check_agent_contract` runs your own agent (a graph, Runnable, ``RemoteGraph``, function
  or :class:`~stellar_graph.AgentSpec`) once, as the orchestra would, and checks what it returns.
* :func:`chat_completion`, :func:`structured_completion`, :func:`openai_error` and
  :func:`make_test_chat_openai` build the exact JSON the OpenAI Chat Completions API returns,
  so the real ``ChatOpenAI`` can be driven through ``respx``::

      with respx.mock(base_url="http://llm.mock/v1") as mock:
          mock.post("/chat/completions").respond(json=chat_completion("hi"))
          make_test_chat_openai().invoke("hello")
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Annotated, Any

import httpx
from langchain_core.caches import BaseCache
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import AIMessage, BaseMessage, get_buffer_string
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, Field, PlainValidator, PrivateAttr

if TYPE_CHECKING:
    from langchain_openai import ChatOpenAI

__all__ = [
    "ScriptExhaustedError",
    "ScriptedChatModel",
    "acheck_agent_contract",
    "chat_completion",
    "check_agent_contract",
    "make_test_chat_openai",
    "openai_error",
    "run_orchestra",
    "structured",
    "structured_completion",
]

logger = logging.getLogger(__name__)

ScriptStep = AIMessage | str | BaseException | Callable[[list[BaseMessage]], AIMessage | str]
"""One scripted answer: a message, a plain string, an exception to raise, or a callable."""

_PREVIEW_CHARS = 300
_CREATED = 1_700_000_000  # fixed timestamp keeps builder output deterministic


def _check_script(value: object) -> list[ScriptStep]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ValueError(
            f"responses must be a list of scripted steps, got {type(value).__name__} "
            f"{_short(value)!r}. Fix: pass responses=[...], e.g. responses=['hello']."
        )
    steps: list[ScriptStep] = []
    for i, step in enumerate(value):
        if isinstance(step, str):
            steps.append(AIMessage(content=step))
        elif isinstance(step, AIMessage | BaseException) or callable(step):
            steps.append(step)
        else:
            raise ValueError(
                f"responses[{i}] must be an AIMessage, str, exception instance or callable, "
                f"got {type(step).__name__} {_short(step)!r}. Fix: wrap other messages' text "
                f"in AIMessage(...) or a str."
            )
    return steps


class ScriptExhaustedError(AssertionError):
    """A :class:`ScriptedChatModel` was called more times than it has scripted answers.

    Derives from ``AssertionError`` so an unexpected extra LLM call fails a test like a failed
    ``assert`` and is not mistaken for a provider error or one of the project's own errors.
    """


class ScriptedChatModel(BaseChatModel):
    """A chat model that replays a fixed script of answers, in order, and records every call.

    Each call to ``invoke``/``ainvoke`` (or ``stream``/``batch``) consumes the next step of
    ``responses``:

    * an ``AIMessage`` is returned (a copy, so the script itself is never mutated);
    * a ``str`` becomes ``AIMessage(content=str)``;
    * an exception instance is raised, to script provider failures;
    * a callable is called with the list of messages received and must return an
      ``AIMessage`` or ``str`` (async callables are awaited by ``ainvoke``).

    Every returned message carries ``usage_metadata`` (an estimate of ``characters // 4``
    tokens, unless the scripted message has its own) and ``response_metadata["model_name"]``
    ``"scripted"``. The cursor is guarded by a lock, so concurrent graph branches each get a
    distinct step. ``bind_tools`` (and therefore the default ``with_structured_output``) returns
    a binding of this same instance: the script and call log are shared.

    Attributes:
        responses: the script.
        calls: the messages of every call, in arrival order (including an unexpected extra call).
        call_kwargs: the keyword arguments of every call (``tools``, ``tool_choice``, ``stop``...).
        call_tools: the names of the tools bound for every call (empty when none).
        bound_tools: the tool names of every ``bind_tools`` call, in order.

    Example:
        >>> model = ScriptedChatModel(responses=["hello", ValueError("down")])
        >>> model.invoke("hi").content
        'hello'
    """

    # A plain validator: pydantic's union validation would feed strings and callables to
    # AIMessage's own validators, which crash on them instead of rejecting them.
    responses: Annotated[list[ScriptStep], PlainValidator(_check_script)]
    calls: list[list[BaseMessage]] = Field(default_factory=list)
    call_kwargs: list[dict[str, Any]] = Field(default_factory=list)
    call_tools: list[list[str]] = Field(default_factory=list)
    bound_tools: list[list[str]] = Field(default_factory=list)
    # A global LLM cache would replay an earlier answer instead of consuming the script.
    cache: BaseCache | bool | None = Field(default=False, exclude=True)

    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _cursor: int = PrivateAttr(default=0)

    @property
    def _llm_type(self) -> str:
        return "scripted-chat-model"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        # The default would dump every field, including callables and exceptions in the script.
        return {"model_name": "scripted", "scripted_steps": len(self.responses)}

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> LangSmithParams:
        """The standard tracing params (langchain-tests' ``test_standard_params`` checks them)."""
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "scripted"
        params["ls_model_name"] = "scripted"
        params["ls_model_type"] = "chat"
        return params

    @property
    def cursor(self) -> int:
        """Number of scripted steps consumed so far."""
        return self._cursor

    @property
    def remaining(self) -> int:
        """Number of scripted steps not consumed yet."""
        return len(self.responses) - self._cursor

    def assert_complete(self) -> None:
        """Check that every scripted step was used.

        Raises:
            AssertionError: some steps were never consumed; the message lists them.
        """
        with self._lock:
            left = self.responses[self._cursor :]
            start = self._cursor
        if not left:
            return
        listed = "; ".join(
            f"#{start + i + 1}: {_describe_step(step)}" for i, step in enumerate(left[:5])
        )
        more = f" (+{len(left) - 5} more)" if len(left) > 5 else ""
        raise AssertionError(
            f"ScriptedChatModel: {len(left)} of {len(self.responses)} scripted responses were "
            f"not used after {start} call(s). Unused: {listed}{more}. Fix: remove the "
            f"extra responses or check why the code under test made fewer LLM calls."
        )

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | Any],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools to the model without changing the script.

        The returned runnable wraps this very instance, so it consumes the same script and
        appends to the same call log. Tools are converted to the OpenAI tool format and passed to
        every call as the ``tools`` keyword argument (visible in :attr:`call_kwargs`).

        Args:
            tools: tools as accepted by ``convert_to_openai_tool`` (BaseTool, pydantic class,
                function, or dict).
            tool_choice: recorded as-is, e.g. ``"any"`` or a tool name.
            **kwargs: further keyword arguments to bind (recorded with each call).

        Returns:
            A runnable that behaves like this model with the tools bound.
        """
        formatted = [convert_to_openai_tool(tool) for tool in tools]
        with self._lock:
            self.bound_tools.append([_tool_name(t) for t in formatted])
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        return self.bind(tools=formatted, **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        number, step = self._take_step(messages, stop, kwargs)
        if callable(step) and not isinstance(step, BaseException):
            answer = step(list(messages))
            if inspect.iscoroutine(answer):
                answer.close()  # avoids a "coroutine was never awaited" warning
                raise TypeError(
                    f"Scripted step #{number} is an async callable, which "
                    f"only `ainvoke` can await. Fix: call the model with `ainvoke`, or script a "
                    f"plain function."
                )
            step = answer
        return self._finish(step, messages)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        # No await happens while the lock is held, so a threading lock is also asyncio-safe.
        _, step = self._take_step(messages, stop, kwargs)
        if callable(step) and not isinstance(step, BaseException):
            answer = step(list(messages))
            step = await answer if inspect.isawaitable(answer) else answer
        return self._finish(step, messages)

    def _take_step(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> tuple[int, ScriptStep]:
        recorded = dict(kwargs)
        if stop is not None:
            recorded["stop"] = stop
        tool_names = [_tool_name(t) for t in recorded.get("tools") or ()]
        with self._lock:
            self.calls.append(list(messages))
            self.call_kwargs.append(recorded)
            self.call_tools.append(tool_names)
            index = self._cursor
            if index < len(self.responses):
                self._cursor += 1
                logger.debug("scripted step %d/%d", index + 1, len(self.responses))
                return index + 1, self.responses[index]
            made = len(self.calls)
        preview = _preview(messages)
        raise ScriptExhaustedError(
            f"ScriptedChatModel got unexpected call #{made} but only {len(self.responses)} "
            f"responses were scripted. The unexpected prompt starts: {preview!r}. Fix: add a "
            f"response for this call to the script, or check why the code under test calls the "
            f"LLM again."
        )

    def _finish(self, step: object, messages: list[BaseMessage]) -> ChatResult:
        if isinstance(step, BaseException):
            raise step
        message = _to_message(step)
        return ChatResult(generations=[ChatGeneration(message=_annotate(message, messages))])


def structured(obj: BaseModel | dict[str, Any], name: str | None = None) -> AIMessage:
    """Build the AIMessage that the default ``with_structured_output`` parses into ``obj``.

    ``BaseChatModel.with_structured_output`` binds the schema as a tool and parses the first
    tool call whose name is the schema's name (its ``title`` or class name), so the message
    carries exactly one such tool call.

    Args:
        obj: the structured answer, a pydantic instance or a plain dict of arguments.
        name: the schema name; defaults to the pydantic model's title or class name.

    Returns:
        An ``AIMessage`` with empty content and one tool call named ``name``.

    Raises:
        ValueError: ``name`` is missing for a dict, or ``obj`` is neither a model nor a dict.
    """
    if isinstance(obj, BaseModel):
        args = obj.model_dump(mode="json")
        name = name or type(obj).model_config.get("title") or type(obj).__name__
    elif isinstance(obj, dict):
        args = dict(obj)
        if not name:
            raise ValueError(
                f"structured() needs `name` for a dict answer {_short(obj)!r}. Fix: pass the "
                f"schema name, e.g. structured({{...}}, name='Plan')."
            )
    else:
        raise ValueError(
            f"structured() expects a pydantic model instance or a dict, got "
            f"{type(obj).__name__} {_short(obj)!r}. Fix: pass `Model(...)` or a dict of fields."
        )
    return AIMessage(
        content="",
        tool_calls=[{"name": name, "args": args, "id": f"call_{name}", "type": "tool_call"}],
    )


def chat_completion(
    content: str | None = None,
    *,
    tool_calls: list[dict[str, Any]] | None = None,
    model: str = "gpt-4o-mini",
    prompt_tokens: int = 10,
    completion_tokens: int = 5,
    finish_reason: str | None = None,
    id: str | None = None,
) -> dict[str, Any]:
    """Build a Chat Completions response body exactly as the OpenAI API returns it.

    Args:
        content: the assistant text (``None`` is what the API sends alongside tool calls).
        tool_calls: tool calls as ``{"name": str, "arguments": dict | str, "id": str?}``;
            dict arguments are JSON-encoded, a missing id gets a deterministic one.
        model: the ``model`` field.
        prompt_tokens: ``usage.prompt_tokens``.
        completion_tokens: ``usage.completion_tokens``.
        finish_reason: defaults to ``"tool_calls"`` when there are tool calls, else ``"stop"``.
        id: the completion id; defaults to a deterministic digest of the content.

    Returns:
        The JSON-compatible response dict (give it to ``respx``'s ``respond(json=...)``).

    Raises:
        ValueError: a tool call lacks a ``name`` or has arguments of the wrong type.
    """
    message: dict[str, Any] = {
        "role": "assistant",
        "content": content,
        "refusal": None,
        "annotations": [],
    }
    if tool_calls:
        message["tool_calls"] = [_wire_tool_call(i, call) for i, call in enumerate(tool_calls)]
    digest = _digest([content, message.get("tool_calls"), model])
    return {
        "id": id or f"chatcmpl-{digest}",
        "object": "chat.completion",
        "created": _CREATED,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": finish_reason or ("tool_calls" if tool_calls else "stop"),
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        "service_tier": "default",
        "system_fingerprint": "fp_stellar_test",
    }


def structured_completion(obj: BaseModel | dict[str, Any], **kw: Any) -> dict[str, Any]:
    """Build a Chat Completions body whose content is ``obj`` as JSON.

    This is what ``ChatOpenAI.with_structured_output(Model)`` (``method="json_schema"``, the
    default) receives and parses.

    Args:
        obj: the structured answer, a pydantic instance or a dict.
        **kw: forwarded to :func:`chat_completion` (``model``, token counts, ``id``...).

    Returns:
        The JSON-compatible response dict.

    Raises:
        ValueError: ``obj`` is neither a pydantic model instance nor a dict.
    """
    if isinstance(obj, BaseModel):
        text = obj.model_dump_json()
    elif isinstance(obj, dict):
        text = json.dumps(obj)
    else:
        raise ValueError(
            f"structured_completion() expects a pydantic model instance or a dict, got "
            f"{type(obj).__name__} {_short(obj)!r}. Fix: pass `Model(...)` or a dict."
        )
    return chat_completion(text, **kw)


_ERROR_KINDS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}


def openai_error(
    status: int,
    message: str,
    *,
    retry_after: float | None = None,
    type: str | None = None,
    code: str | None = None,
) -> httpx.Response:
    """Build an OpenAI API error response.

    Args:
        status: HTTP status code (4xx or 5xx).
        message: ``error.message``.
        retry_after: seconds; sets the ``retry-after`` header when given.
        type: ``error.type``; defaults to what the API sends for ``status``.
        code: ``error.code``; defaults to what the API sends for ``status``.

    Returns:
        An ``httpx.Response`` with body ``{"error": {"message", "type", "param", "code"}}``
        (return it from a respx route or pass it to ``route.mock(return_value=...)``).

    Raises:
        ValueError: ``status`` is not an HTTP error status.
    """
    if not 400 <= status <= 599:
        raise ValueError(
            f"openai_error() needs an HTTP error status (400-599), got status={status!r}. "
            f"Fix: use chat_completion() for successful responses."
        )
    default_type, default_code = _ERROR_KINDS.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", None)
    )
    headers = {"x-request-id": f"req_{_digest([status, message])}"}
    if retry_after is not None:
        headers["retry-after"] = f"{retry_after:g}"
    body = {
        "error": {
            "message": message,
            "type": type or default_type,
            "param": None,
            "code": code if code is not None else default_code,
        }
    }
    return httpx.Response(status, json=body, headers=headers)


def make_test_chat_openai(
    base_url: str = "http://llm.mock/v1", model: str = "gpt-4o-mini", **kw: Any
) -> ChatOpenAI:
    """Build a real ``ChatOpenAI`` wired for respx-mocked tests.

    openai 3.x talks through its own ``httpx2`` transport, which respx does not patch; giving
    the client plain ``httpx`` clients makes every request visible to ``respx.mock``. Retries
    are off and the timeout is short so a missing mock route fails fast.

    Args:
        base_url: the API base URL to mock (match it in ``respx.mock(base_url=...)``).
        model: the model name sent in requests.
        **kw: further ``ChatOpenAI`` arguments; they override the test defaults.

    Returns:
        A ``ChatOpenAI`` instance with a fake API key.
    """
    from stellar_graph.llm import (
        chat_openai_class,  # the `openai` extra; only tests that need it pay for it
    )


    params: dict[str, Any] = {
        "model": model,
        "api_key": "sk-test",
        "base_url": base_url,
        "max_retries": 0,
        "timeout": 5,
        **kw,
    }
    if "http_client" not in params:
        params["http_client"] = httpx.Client()
    if "http_async_client" not in params:
        params["http_async_client"] = httpx.AsyncClient()
    return chat_openai_class()(**params)  # type: ignore[no-any-return]


def _to_message(step: object) -> AIMessage:
    if isinstance(step, AIMessage):
        return step.model_copy(deep=True)
    if isinstance(step, str):
        return AIMessage(content=step)
    raise TypeError(
        f"A scripted callable must return an AIMessage or str, got {type(step).__name__} "
        f"{_short(step)!r}. Fix: return AIMessage(...) or a string from the callable."
    )


def _annotate(message: AIMessage, prompt: list[BaseMessage]) -> AIMessage:
    if message.usage_metadata is None:
        input_tokens = sum(len(str(m.text)) for m in prompt) // 4
        output_chars = len(str(message.text)) + sum(
            len(call["name"]) + len(json.dumps(call["args"])) for call in message.tool_calls
        )
        output_tokens = output_chars // 4
        message.usage_metadata = UsageMetadata(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            total_tokens=input_tokens + output_tokens,
        )
    message.response_metadata = {"model_name": "scripted", **message.response_metadata}
    return message


def _describe_step(step: ScriptStep) -> str:
    if isinstance(step, BaseException):
        return f"raise {type(step).__name__}({_short(str(step))!r})"
    if isinstance(step, AIMessage):
        names = [call["name"] for call in step.tool_calls]
        return f"AIMessage(content={_short(str(step.content))!r}, tool_calls={names})"
    return f"callable {getattr(step, '__name__', type(step).__name__)}"


def _tool_name(tool: dict[str, Any]) -> str:
    function = tool.get("function")
    if isinstance(function, dict) and "name" in function:
        return str(function["name"])
    return str(tool.get("name", "?"))


def _wire_tool_call(index: int, call: dict[str, Any]) -> dict[str, Any]:
    name = call.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(
            f"tool_calls[{index}] needs a non-empty 'name', got {call!r}. Fix: pass "
            f"{{'name': 'search', 'arguments': {{...}}}}."
        )
    arguments = call.get("arguments", {})
    if isinstance(arguments, dict):
        arguments = json.dumps(arguments)
    elif not isinstance(arguments, str):
        raise ValueError(
            f"tool_calls[{index}]['arguments'] must be a dict or a JSON string, got "
            f"{arguments!r}. Fix: pass a dict of arguments."
        )
    call_id = call.get("id") or f"call_{_digest([index, name, arguments])[:24]}"
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def _preview(messages: list[BaseMessage]) -> str:
    text = get_buffer_string(messages)
    return text if len(text) <= _PREVIEW_CHARS else text[:_PREVIEW_CHARS] + "..."


def _short(value: object, limit: int = 60) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _digest(parts: list[Any]) -> str:
    raw = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(raw).hexdigest()[:29]


async def run_orchestra(
    payload: Any,
    config: Any = None,
    *,
    thread_id: str = "test",
    checkpointer: Any = None,
    store: Any = None,
    **options: Any,
) -> dict[str, Any]:
    """Run the orchestra on one thread until idle and return the control state (for tests).

    Both graphs are compiled on ``checkpointer`` (a fresh ``InMemorySaver`` by default); the
    payload is one control-graph input (``{"register_agents": [...], "submit_tasks": [...]}``).

    Args:
        payload: the input of the first control run.
        config: the orchestra config.
        thread_id: the orchestra's thread.
        checkpointer: the checkpointer of both graphs (``InMemorySaver()`` if ``None``).
        store: the LangGraph Store.
        **options: ``model``, ``agents``, ``seed``, ``clock`` for the graphs.

    Returns:
        The control thread's values once every run it led to has finished.
    """
    from langgraph.checkpoint.memory import InMemorySaver

    from stellar_graph.graphs.runtime import open_runtime

    saver = checkpointer if checkpointer is not None else InMemorySaver()
    async with open_runtime(config, thread_id=thread_id, checkpointer=saver, store=store, **options) as runtime:
        return await runtime.run(payload)


_CONTRACT_TASK = {
    "id": "contract-check",
    "description": "Say in one sentence what you can do.",
    "success_criteria": [],
}
_REPORT_TYPES: dict[str, type | tuple[type, ...]] = {
    "status": str, "result": str, "criteria_met": list, "criteria_unmet": list, "usage": dict, "simulated": bool,
}


async def acheck_agent_contract(
    agent: Any, *, task: dict[str, Any] | None = None, profile: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Run ``agent`` once as the orchestra runs an agent type, and check its report.

    Args:
        agent: an :class:`~stellar_graph.AgentSpec`, or what ``AgentSpec(graph=...)`` takes: a
            compiled graph, a Runnable, a ``RemoteGraph`` or a function of the agent input.
        task: the task to give it (a ``Task`` dict; default a one-line task without criteria,
            needing the type's first capability).
        profile: the agent instance (an ``AgentProfile`` dict; default one of the spec's type).

    Returns:
        The report the orchestra would record (``status``, ``result``, ``criteria_met``...).

    Raises:
        ModelBehaviorError: the agent returned something the contract does not accept (the message
            lists what it accepts).
        AssertionError: the report breaks the contract (a wrong status or field type).
    """
    from stellar_graph.agents.factory import create_agent
    from stellar_graph.agents.spec import AgentSpec
    from stellar_graph.models import AgentProfile, Task

    spec = agent if isinstance(agent, AgentSpec) else AgentSpec(name="agent_under_test", graph=agent)
    graph = create_agent(spec, model=None).compile(name=spec.name)
    skill = (spec.capabilities or ("general",))[0]
    default_task = {**_CONTRACT_TASK, "required_skills": [skill]}
    checked_task = Task.model_validate(task or default_task).model_dump(mode="json")
    instance = AgentProfile.model_validate(
        profile or spec.default_profile(f"{spec.name}-001", capabilities=[skill, *spec.capabilities[1:]])
    ).model_dump(mode="json")
    out = await graph.ainvoke({"task": checked_task, "agent": instance, "attempt": 1, "inbox": []})
    report = out.get("report") if isinstance(out, dict) else None
    assert isinstance(report, dict), f"the agent graph returned {out!r:.200}, not {{'report': {{...}}}}"
    for key, kind in _REPORT_TYPES.items():
        assert isinstance(report.get(key), kind), f"report[{key!r}] = {report.get(key)!r:.100} is not {kind}"
    assert report["status"] in ("completed", "failed"), f"report['status'] = {report['status']!r}"
    assert report["task_id"] == checked_task["id"] and report["agent_id"] == instance["agent_id"]
    return dict(report)


def check_agent_contract(
    agent: Any, *, task: dict[str, Any] | None = None, profile: dict[str, Any] | None = None
) -> dict[str, Any]:
    """:func:`acheck_agent_contract` for synchronous code (no running event loop)."""
    import asyncio

    return asyncio.run(acheck_agent_contract(agent, task=task, profile=profile))
