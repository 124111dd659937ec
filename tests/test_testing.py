"""Tests for stellar_graph.testing: the scripted chat model and the OpenAI wire builders."""

from __future__ import annotations

import asyncio
import json
import threading

import httpx
import openai
import pytest
import respx
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.tools import tool
from pydantic import BaseModel, ValidationError

from stellar_graph.testing import (
    ScriptedChatModel,
    ScriptExhaustedError,
    chat_completion,
    make_test_chat_openai,
    openai_error,
    structured,
    structured_completion,
)

BASE_URL = "http://llm.mock/v1"


class Plan(BaseModel):
    """A plan of steps."""

    steps: list[str]
    done: bool = False


@tool
def search(query: str) -> str:
    """Search the web."""
    return query


# --- ScriptedChatModel: replay -------------------------------------------------------------


def test_replays_in_order_and_wraps_strings() -> None:
    model = ScriptedChatModel(responses=["one", AIMessage(content="two"), "three"])
    assert [model.invoke(f"q{i}").content for i in range(3)] == ["one", "two", "three"]
    assert model.cursor == 3
    assert model.remaining == 0
    model.assert_complete()


def test_stream_and_batch_consume_the_script() -> None:
    model = ScriptedChatModel(responses=["streamed", "b1", "b2"])
    assert [chunk.content for chunk in model.stream("s")] == ["streamed"]
    assert sorted(str(r.content) for r in model.batch(["1", "2"])) == ["b1", "b2"]
    model.assert_complete()


def test_returned_messages_carry_usage_and_model_name() -> None:
    model = ScriptedChatModel(responses=["x" * 40])
    reply = model.invoke([SystemMessage(content="s" * 20), HumanMessage(content="h" * 21)])
    assert reply.usage_metadata == {"input_tokens": 10, "output_tokens": 10, "total_tokens": 20}
    assert reply.response_metadata["model_name"] == "scripted"
    assert model._llm_type == "scripted-chat-model"


def test_scripted_usage_and_metadata_are_kept_and_script_not_mutated() -> None:
    usage = {"input_tokens": 7, "output_tokens": 3, "total_tokens": 10}
    scripted = AIMessage(content="hi", usage_metadata=usage, response_metadata={"extra": 1})
    model = ScriptedChatModel(responses=[scripted])
    reply = model.invoke("q" * 400)
    assert reply.usage_metadata == usage
    assert reply.response_metadata["extra"] == 1
    assert reply.response_metadata["model_name"] == "scripted"
    assert reply is not scripted
    assert scripted.response_metadata == {"extra": 1}
    assert scripted.id is None


def test_exception_step_is_raised_and_script_continues() -> None:
    boom = ConnectionError("provider down")
    model = ScriptedChatModel(responses=[boom, "recovered"])
    with pytest.raises(ConnectionError, match="provider down") as info:
        model.invoke("first")
    assert info.value is boom
    assert model.invoke("second").content == "recovered"
    assert len(model.calls) == 2


def test_callable_step_sees_the_messages() -> None:
    seen: list[list[BaseMessage]] = []

    def echo(messages: list[BaseMessage]) -> str:
        seen.append(messages)
        return f"echo: {messages[-1].content} ({len(messages)} msgs)"

    def as_message(messages: list[BaseMessage]) -> AIMessage:
        return AIMessage(content=str(messages[0].content).upper())

    model = ScriptedChatModel(responses=[echo, as_message])
    prompt = [SystemMessage(content="sys"), HumanMessage(content="ping")]
    assert model.invoke(prompt).content == "echo: ping (2 msgs)"
    assert [m.content for m in seen[0]] == ["sys", "ping"]
    assert model.invoke("abc").content == "ABC"


def test_callable_returning_wrong_type_is_a_clear_error() -> None:
    model = ScriptedChatModel(responses=[lambda _messages: 42])
    with pytest.raises(TypeError, match=r"must return an AIMessage or str, got int '42'"):
        model.invoke("q")


async def test_async_callable_step_is_awaited_by_ainvoke() -> None:
    async def later(messages: list[BaseMessage]) -> str:
        await asyncio.sleep(0)
        return f"async {messages[-1].content}"

    model = ScriptedChatModel(responses=[later, later])
    assert (await model.ainvoke("x")).content == "async x"
    with pytest.raises(TypeError, match=r"step #2 is an async callable"):
        model.invoke("y")


def test_invalid_steps_are_rejected_at_construction() -> None:
    with pytest.raises(ValidationError, match=r"responses\[1\] must be an AIMessage"):
        ScriptedChatModel(responses=["ok", 3])
    with pytest.raises(ValidationError, match="responses must be a list"):
        ScriptedChatModel(responses="not a list")


# --- ScriptedChatModel: recording and completeness ----------------------------------------


def test_records_calls_and_kwargs() -> None:
    model = ScriptedChatModel(responses=["a", "b"])
    model.invoke("first")
    model.invoke([HumanMessage(content="second")], stop=["END"])
    assert [[m.content for m in call] for call in model.calls] == [["first"], ["second"]]
    assert model.call_kwargs == [{}, {"stop": ["END"]}]
    assert model.call_tools == [[], []]


def test_assert_complete_lists_unused_steps() -> None:
    model = ScriptedChatModel(responses=["used", "left over", KeyError("k")])
    model.invoke("q")
    with pytest.raises(AssertionError) as info:
        model.assert_complete()
    text = str(info.value)
    assert "2 of 3 scripted responses were not used after 1 call(s)" in text
    assert "#2: AIMessage(content='left over'" in text
    assert "#3: raise KeyError" in text


def test_extra_call_raises_assertion_error_with_prompt_preview() -> None:
    model = ScriptedChatModel(responses=["only"])
    model.invoke("fine")
    with pytest.raises(ScriptExhaustedError) as info:
        model.invoke("please summarise the quarterly report " + "x" * 500)
    assert isinstance(info.value, AssertionError)
    text = str(info.value)
    assert "unexpected call #2 but only 1 responses were scripted" in text
    assert "'Human: please summarise the quarterly report xxx" in text
    assert "x" * 400 not in text  # the preview is truncated
    assert len(model.calls) == 2
    model.assert_complete()


# --- ScriptedChatModel: tools and structured output ---------------------------------------


def test_bind_tools_shares_script_and_records_tool_names() -> None:
    model = ScriptedChatModel(
        responses=[
            AIMessage(
                content="",
                tool_calls=[{"name": "search", "args": {"query": "q"}, "id": "c1"}],
            ),
            "plain",
        ]
    )
    bound = model.bind_tools([search, Plan], tool_choice="auto")
    reply = bound.invoke("find it")
    assert reply.tool_calls[0]["name"] == "search"
    assert reply.tool_calls[0]["args"] == {"query": "q"}
    assert model.invoke("unbound").content == "plain"
    assert model.bound_tools == [["search", "Plan"]]
    assert model.call_tools == [["search", "Plan"], []]
    assert model.call_kwargs[0]["tool_choice"] == "auto"
    assert [t["function"]["name"] for t in model.call_kwargs[0]["tools"]] == ["search", "Plan"]
    assert bound.calls is model.calls  # the binding forwards to the same instance
    model.assert_complete()


def test_structured_builds_the_expected_tool_call() -> None:
    message = structured(Plan(steps=["a"]))
    assert message.content == ""
    assert message.tool_calls == [
        {
            "name": "Plan",
            "args": {"steps": ["a"], "done": False},
            "id": "call_Plan",
            "type": "tool_call",
        }
    ]
    assert structured({"steps": []}, "Other").tool_calls[0]["name"] == "Other"
    with pytest.raises(ValueError, match="needs `name` for a dict answer"):
        structured({"steps": []})
    with pytest.raises(ValueError, match="expects a pydantic model instance or a dict"):
        structured(["steps"])  # type: ignore[arg-type]


def test_with_structured_output_parses_scripted_answer() -> None:
    model = ScriptedChatModel(responses=[structured(Plan(steps=["a", "b"], done=True))])
    result = model.with_structured_output(Plan).invoke("plan it")
    assert result == Plan(steps=["a", "b"], done=True)
    assert model.call_tools == [["Plan"]]
    assert model.call_kwargs[0]["tool_choice"] == "any"


async def test_with_structured_output_include_raw() -> None:
    model = ScriptedChatModel(responses=[structured(Plan(steps=["x"])), "not structured"])
    runnable = model.with_structured_output(Plan, include_raw=True)
    good = await runnable.ainvoke("first")
    assert good["parsed"] == Plan(steps=["x"])
    assert good["parsing_error"] is None
    assert good["raw"].tool_calls[0]["name"] == "Plan"
    bad = await runnable.ainvoke("second")
    assert bad["parsed"] is None
    assert bad["raw"].content == "not structured"
    model.assert_complete()


# --- ScriptedChatModel: concurrency -------------------------------------------------------


async def test_concurrent_ainvoke_gets_distinct_answers() -> None:
    model = ScriptedChatModel(responses=[f"answer {i}" for i in range(20)])
    replies = await asyncio.gather(*(model.ainvoke(f"q{i}") for i in range(20)))
    assert sorted(r.content for r in replies) == sorted(f"answer {i}" for i in range(20))
    assert len(model.calls) == 20
    model.assert_complete()


def test_concurrent_threads_get_distinct_answers() -> None:
    model = ScriptedChatModel(responses=[f"answer {i}" for i in range(40)])
    results: list[str] = []
    results_lock = threading.Lock()

    def worker() -> None:
        for _ in range(5):
            content = str(model.invoke("q").content)
            with results_lock:
                results.append(content)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == sorted(f"answer {i}" for i in range(40))
    model.assert_complete()


# --- OpenAI wire builders -----------------------------------------------------------------


def test_chat_completion_shape() -> None:
    body = chat_completion(
        tool_calls=[{"name": "search", "arguments": {"query": "q"}, "id": "call_1"}],
        prompt_tokens=3,
        completion_tokens=4,
        id="chatcmpl-1",
    )
    assert body["id"] == "chatcmpl-1"
    assert body["object"] == "chat.completion"
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    assert choice["message"]["tool_calls"] == [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "search", "arguments": '{"query": "q"}'},
        }
    ]
    assert body["usage"]["total_tokens"] == 7
    plain = chat_completion("hi")
    assert plain["choices"][0]["finish_reason"] == "stop"
    assert "tool_calls" not in plain["choices"][0]["message"]
    assert plain == chat_completion("hi")  # deterministic
    assert plain["id"] != chat_completion("bye")["id"]
    with pytest.raises(ValueError, match=r"tool_calls\[0\] needs a non-empty 'name'"):
        chat_completion(tool_calls=[{"arguments": {}}])


def test_openai_error_shape() -> None:
    response = openai_error(429, "slow down", retry_after=1.5)
    assert response.status_code == 429
    assert response.headers["retry-after"] == "1.5"
    assert response.json() == {
        "error": {
            "message": "slow down",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }
    server = openai_error(503, "overloaded")
    assert "retry-after" not in server.headers
    assert server.json()["error"]["type"] == "server_error"
    with pytest.raises(ValueError, match="status=200"):
        openai_error(200, "fine")


@respx.mock(base_url=BASE_URL, assert_all_called=True)
def test_real_chat_openai_plain_content(respx_mock: respx.MockRouter) -> None:
    route = respx_mock.post("/chat/completions").respond(
        json=chat_completion("hello there", prompt_tokens=12, completion_tokens=2)
    )
    llm = make_test_chat_openai()
    reply = llm.invoke([SystemMessage(content="be brief"), HumanMessage(content="hi")])
    assert reply.content == "hello there"
    assert reply.usage_metadata is not None
    assert reply.usage_metadata["input_tokens"] == 12
    assert reply.usage_metadata["output_tokens"] == 2
    sent = json.loads(route.calls.last.request.content)
    assert sent["model"] == "gpt-4o-mini"
    assert sent["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
    ]
    assert route.calls.last.request.headers["authorization"] == "Bearer sk-test"


async def test_real_chat_openai_tool_call_async() -> None:
    with respx.mock(base_url=BASE_URL, assert_all_called=True) as mock:
        route = mock.post("/chat/completions").respond(
            json=chat_completion(
                tool_calls=[{"name": "search", "arguments": {"query": "langgraph"}}]
            )
        )
        llm = make_test_chat_openai(model="gpt-test")
        reply = await llm.bind_tools([search]).ainvoke("look it up")
    assert isinstance(reply, AIMessage)
    assert [(c["name"], c["args"]) for c in reply.tool_calls] == [
        ("search", {"query": "langgraph"})
    ]
    assert reply.tool_calls[0]["id"].startswith("call_")
    sent = json.loads(route.calls.last.request.content)
    assert sent["model"] == "gpt-test"
    assert [t["function"]["name"] for t in sent["tools"]] == ["search"]


def test_real_chat_openai_structured_output() -> None:
    with respx.mock(base_url=BASE_URL, assert_all_called=True) as mock:
        route = mock.post("/chat/completions").respond(
            json=structured_completion(Plan(steps=["draft", "review"], done=True))
        )
        result = make_test_chat_openai().with_structured_output(Plan).invoke("plan")
    assert result == Plan(steps=["draft", "review"], done=True)
    sent = json.loads(route.calls.last.request.content)
    assert sent["response_format"]["type"] == "json_schema"
    assert sent["response_format"]["json_schema"]["name"] == "Plan"


def test_real_chat_openai_server_error_raises() -> None:
    with respx.mock(base_url=BASE_URL, assert_all_called=True) as mock:
        mock.post("/chat/completions").mock(return_value=openai_error(500, "kaboom"))
        llm = make_test_chat_openai()
        with pytest.raises(openai.InternalServerError, match="kaboom") as info:
            llm.invoke("hi")
    assert info.value.status_code == 500


def test_real_chat_openai_rate_limit_exposes_retry_after() -> None:
    with respx.mock(base_url=BASE_URL, assert_all_called=True) as mock:
        route = mock.post("/chat/completions").mock(
            return_value=openai_error(429, "slow down", retry_after=2)
        )
        with pytest.raises(openai.RateLimitError) as info:
            make_test_chat_openai().invoke("hi")
    assert info.value.response.headers["retry-after"] == "2"
    assert route.call_count == 1  # max_retries=0: no hidden retry


def test_make_test_chat_openai_overrides() -> None:
    client = httpx.Client()
    llm = make_test_chat_openai(max_retries=3, temperature=0.0, http_client=client)
    assert llm.max_retries == 3
    assert llm.temperature == 0.0
    assert llm.model_name == "gpt-4o-mini"
    assert llm.http_client is client
    client.close()


def test_scripted_model_reports_the_standard_tracing_params() -> None:
    """What langchain-tests' `test_standard_params` checks (issue 14: `ls_model_name` was missing)."""
    from stellar_graph.testing import ScriptedChatModel

    params = ScriptedChatModel(responses=["hi"])._get_ls_params()
    assert params["ls_provider"] == "scripted" and params["ls_model_name"] == "scripted"
    assert params["ls_model_type"] == "chat"
