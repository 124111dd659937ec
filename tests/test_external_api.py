"""External APIs as agent tools: auth, the token bucket under a burst, and a credential that never leaks."""

from __future__ import annotations

import asyncio
import heapq
import json
import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from langchain_core.messages import AIMessage

from stellar_graph import (
    PYTHAGORAS,
    AgentAnswer,
    ConfigurationError,
    OrchestraConfig,
    StellarOrchestra,
)
from stellar_graph.events import EventHub
from stellar_graph.integrations import (
    ExternalAPIClient,
    ExternalAPISpec,
    IntegrationsMixin,
    RateLimitExceeded,
    TokenBucket,
    create_external_api_tool,
)
from stellar_graph.testing import ScriptedChatModel, structured

API = "https://api.research.org"
SECRET = "rdb-live-7Hq2xZp9vL4kT0w"
SEED = {
    "name": "research_database",
    "endpoint": API,
    "authentication": "bearer_token",
    "rate_limits": {"requests_per_minute": 100},
}


@pytest.fixture
def credential(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("RESEARCH_DB_TOKEN", SECRET)
    return SECRET


class Facade(IntegrationsMixin):
    def __init__(self) -> None:
        self.config = OrchestraConfig()
        self.hub = EventHub()

    def on(self, event: str, handler: Any) -> None:
        self.hub.on(event, handler)


class FakeTime:
    """Virtual time: sleepers wake in order of their wake-up time, and only when all others wait."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        future = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now + seconds, len(self._sleepers), future))
        await future

    async def run(self, coros: list[Any]) -> list[Any]:
        tasks = [asyncio.ensure_future(c) for c in coros]
        while not all(t.done() for t in tasks):
            for _ in range(10_000):  # let every task run until it finishes or sleeps
                if sum(t.done() for t in tasks) + len(self._sleepers) == len(tasks):
                    break
                await asyncio.sleep(0)
            if self._sleepers:
                self.now, _, future = heapq.heappop(self._sleepers)
                future.set_result(None)
        return [t.result() for t in tasks]


def client_of(tool: Any) -> ExternalAPIClient:
    return next(
        c.cell_contents
        for c in tool.coroutine.__closure__
        if isinstance(c.cell_contents, ExternalAPIClient)
    )


async def test_the_seed_call_makes_a_registered_tool(credential: str) -> None:
    facade = Facade()
    tool = await facade.integrate_external_api(SEED, credential_env="RESEARCH_DB_TOKEN")
    assert tool.name == "research_database"
    assert "100 requests/minute" in tool.description
    assert set(tool.args_schema.model_json_schema()["properties"]) == {
        "path",
        "method",
        "params",
        "body",
    }
    assert facade.external_tools() == [tool]
    assert tool.metadata == {
        "stellar_graph": {
            "kind": "external_api",
            "endpoint": API,
            "authentication": "bearer_token",
            "credential_env": "RESEARCH_DB_TOKEN",
        }
    }
    # The positional form is the same API, and a name is registered once.
    with pytest.raises(ConfigurationError, match="already integrated"):
        await facade.integrate_external_api(
            "research_database",
            API,
            "bearer_token",
            {"requests_per_minute": 5},
            credential_env="RESEARCH_DB_TOKEN",
        )
    other = await facade.integrate_external_api(
        "catalog", "https://catalog.example.org/v2", "none", {"requests_per_minute": 10}
    )
    assert facade.external_tools() == [tool, other]
    assert facade.integration_stats()["external_apis"] == {
        "research_database": {"calls": 0, "rate_limited": 0, "errors": 0},
        "catalog": {"calls": 0, "rate_limited": 0, "errors": 0},
    }


@respx.mock(assert_all_called=True)
async def test_bearer_and_api_key_credentials_are_sent(
    respx_mock: respx.MockRouter, credential: str
) -> None:
    search = respx_mock.get(f"{API}/papers/search", params={"q": "quantum", "limit": "2"}).respond(
        json={"papers": ["p1", "p2"]}
    )
    post = respx_mock.post("https://keys.example.org/v1/items").respond(201, json={"id": 7})
    bearer = create_external_api_tool(SEED, credential_env="RESEARCH_DB_TOKEN")
    keyed = create_external_api_tool(
        "items",
        "https://keys.example.org/v1/",
        {"type": "api_key_header", "header": "X-Api-Key", "credential_env": "RESEARCH_DB_TOKEN"},
        {"requests_per_minute": 10},
    )

    out = await bearer.ainvoke({"path": "/papers/search", "params": {"q": "quantum", "limit": 2}})
    assert out == 'HTTP 200\n{"papers":["p1","p2"]}'
    assert search.calls.last.request.headers["Authorization"] == f"Bearer {SECRET}"
    out = await keyed.ainvoke({"path": "items", "method": "POST", "body": {"title": "x"}})
    assert out == 'HTTP 201\n{"id":7}'
    request = post.calls.last.request
    assert request.headers["X-Api-Key"] == SECRET and "Authorization" not in request.headers
    assert json.loads(request.content) == {"title": "x"}


@respx.mock(assert_all_called=True)
async def test_the_rate_limit_holds_under_a_burst(
    respx_mock: respx.MockRouter, credential: str
) -> None:
    route = respx_mock.get(f"{API}/ping").respond(json={"ok": True})
    facade = Facade()
    tool = await facade.integrate_external_api(
        "research_database",
        API,
        "bearer_token",
        {"requests_per_minute": 5, "max_wait_seconds": 0},
        credential_env="RESEARCH_DB_TOKEN",
    )
    # 12 calls at once; the next token is 12 s away, far beyond this test's runtime.
    outputs = await asyncio.gather(*(tool.ainvoke({"path": "ping"}) for _ in range(12)))

    assert route.call_count == 5
    assert sum(o.startswith("HTTP 200") for o in outputs) == 5
    refused = [o for o in outputs if not o.startswith("HTTP 200")]
    assert len(refused) == 7
    assert all(
        o.startswith("research_database: rate limit of 5 requests/minute reached; retry in ")
        for o in refused
    )
    assert facade.integration_stats()["external_apis"]["research_database"] == {
        "calls": 5,
        "rate_limited": 7,
        "errors": 0,
    }


@respx.mock(assert_all_called=True)
async def test_waiting_callers_are_paced_at_the_configured_rate(
    respx_mock: respx.MockRouter, credential: str
) -> None:
    fake = FakeTime()
    seen: list[float] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(fake.now)
        return httpx.Response(200, json={})

    respx_mock.get(f"{API}/ping").mock(side_effect=record)
    spec = ExternalAPISpec.from_seed(SEED, credential_env="RESEARCH_DB_TOKEN")
    spec = replace(spec, requests_per_minute=60, burst=2, max_wait_seconds=2.5)
    bucket = TokenBucket(60, burst=2, clock=fake.clock, sleep=fake.sleep)
    tool = ExternalAPIClient(spec, bucket=bucket).as_tool()

    outputs = await fake.run([tool.ainvoke({"path": "ping"}) for _ in range(5)])

    # Two from the burst at t=0, then one per second; the fifth would wait 3 s > 2.5 s: refused.
    assert sorted(seen) == [0.0, 0.0, 1.0, 2.0]
    assert sum(o.startswith("HTTP 200") for o in outputs) == 4
    assert "retry in 3.0s" in next(o for o in outputs if not o.startswith("HTTP"))


async def test_token_bucket_refills_and_reserves_in_order() -> None:
    fake = FakeTime()
    bucket = TokenBucket(30, burst=3, clock=fake.clock, sleep=fake.sleep)
    assert [bucket.try_acquire() for _ in range(4)] == [True, True, True, False]
    fake.now += 2.0  # 30/min: one token every 2 s
    assert bucket.try_acquire() and not bucket.try_acquire()
    waits = await fake.run([bucket.acquire(10) for _ in range(3)])
    assert waits == [2.0, 4.0, 6.0]
    with pytest.raises(RateLimitExceeded) as info:
        await bucket.acquire(1.0)
    assert info.value.retry_after == pytest.approx(2.0)
    assert TokenBucket(100).capacity == 100 and TokenBucket(0.5).capacity == 1


@respx.mock
async def test_failures_come_back_to_the_agent_as_text_without_the_credential(
    respx_mock: respx.MockRouter, credential: str
) -> None:
    respx_mock.get(f"{API}/down").respond(503, text=f"upstream rejected Bearer {SECRET}")
    respx_mock.get(f"{API}/slow").mock(side_effect=httpx.ConnectTimeout("timed out"))
    respx_mock.get(f"{API}/echo").respond(json={"auth": f"Bearer {SECRET}"})
    tool = create_external_api_tool(SEED, credential_env="RESEARCH_DB_TOKEN")

    down = await tool.ainvoke({"path": "down"})
    slow = await tool.ainvoke({"path": "slow"})
    echo = await tool.ainvoke({"path": "echo"})

    assert down == "research_database: HTTP 503 for GET /down: upstream rejected Bearer [REDACTED]"
    assert (
        slow == "research_database: request failed (ConnectTimeout); the API may be down or slow."
    )
    assert echo == 'HTTP 200\n{"auth":"Bearer [REDACTED]"}'
    assert client_of(tool).stats == {"calls": 3, "rate_limited": 0, "errors": 2}


@pytest.mark.parametrize(
    "path",
    [
        "../admin",
        "a/../../admin",
        "%2e%2e/admin",
        "https://evil.example/x",
        "//evil.example/x",
        "search?q=1",
        "a#frag",
        "..\\admin",
    ],
)
@respx.mock
async def test_paths_cannot_leave_the_endpoint(
    respx_mock: respx.MockRouter, path: str, credential: str
) -> None:
    route = respx_mock.route().respond(200)
    tool = create_external_api_tool(SEED, credential_env="RESEARCH_DB_TOKEN")
    out = await tool.ainvoke({"path": path})
    assert out.startswith(f"research_database: path {path!r} is not allowed")
    assert route.call_count == 0


async def test_a_credential_removed_after_registration_is_reported_not_sent(
    monkeypatch: pytest.MonkeyPatch, credential: str
) -> None:
    tool = create_external_api_tool(SEED, credential_env="RESEARCH_DB_TOKEN")
    monkeypatch.delenv("RESEARCH_DB_TOKEN")
    out = await tool.ainvoke({"path": "x"})
    assert (
        out
        == "research_database: its credential is not configured (environment variable RESEARCH_DB_TOKEN is not set)."
    )


@pytest.mark.parametrize(
    ("kwargs", "field", "fragment"),
    [
        ({"credential_env": "NOT_SET_ANYWHERE"}, "credential_env", "NOT_SET_ANYWHERE is not set"),
        ({"name": "research database"}, "name", "not a valid tool name"),
        ({"authentication": "oauth2"}, "authentication", "'oauth2' is not supported"),
        ({"endpoint": "http://api.research.org"}, "endpoint", "would travel unencrypted"),
        ({"endpoint": "ftp://api.research.org"}, "endpoint", "scheme 'ftp'"),
        ({"endpoint": f"{API}?key=1"}, "endpoint", "query or fragment"),
        (
            {"rate_limits": {"requests_per_minute": 0}},
            "rate_limits.requests_per_minute",
            "must be > 0",
        ),
        ({"rate_limits": {"rpm": 10}}, "rate_limits", "Unknown `rate_limits` key(s) ['rpm']"),
        (
            {"rate_limits": {"requests_per_minute": 10, "burst": 0}},
            "rate_limits.burst",
            "must be >= 1",
        ),
    ],
)
async def test_configuration_mistakes_are_refused(
    kwargs: dict[str, Any], field: str, fragment: str, credential: str
) -> None:
    args = {**SEED, "credential_env": "RESEARCH_DB_TOKEN", **kwargs}
    credential_env = args.pop("credential_env")
    with pytest.raises(ConfigurationError) as info:
        await Facade().integrate_external_api(args, credential_env=credential_env)
    assert info.value.field == field
    assert fragment in str(info.value)


def test_the_default_credential_variable_and_http_opt_in() -> None:
    spec = ExternalAPISpec.from_seed(SEED)
    assert spec.credential_variable == "STELLAR_GRAPH_RESEARCH_DATABASE_TOKEN"
    assert ExternalAPISpec("local", "http://127.0.0.1:8000", "bearer_token").endpoint.startswith(
        "http://"
    )
    assert ExternalAPISpec(
        "lan", "http://svc.internal:8000", "bearer_token", allow_http=True
    ).allow_http
    assert ExternalAPISpec.from_seed("open", "https://x.example", None).credential_variable is None


@pytest.mark.slow
@respx.mock(assert_all_called=True)
async def test_the_credential_never_reaches_checkpoints_state_or_logs(
    respx_mock: respx.MockRouter,
    credential: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    fixed_clock,
) -> None:
    caplog.set_level(logging.DEBUG)
    # The worst case: the API echoes the Authorization header back in its body.
    api = respx_mock.get(f"{API}/papers/search", params={"q": "quantum error correction"}).mock(
        side_effect=lambda request: httpx.Response(
            200,
            json={
                "papers": ["Surface codes", "Cat qubits"],
                "echo": request.headers["Authorization"],
            },
        )
    )
    tool = create_external_api_tool(SEED, credential_env="RESEARCH_DB_TOKEN")
    result = "Two sources: surface codes and cat qubits (via research_database)."
    model = ScriptedChatModel(
        responses=[
            AIMessage(
                content="",
                tool_calls=[
                    {
                        "name": "research_database",
                        "args": {
                            "path": "papers/search",
                            "params": {"q": "quantum error correction"},
                        },
                        "id": "call-1",
                    }
                ],
            ),
            AIMessage(content="I have two papers."),
            structured(AgentAnswer(result=result, criteria_met=["sources"], confidence=0.9)),
        ]
    )
    spec = replace(PYTHAGORAS, tools=(tool,))
    data = tmp_path / "data"
    async with StellarOrchestra(
        {"persistence": {"data_dir": str(data)}}, model=model, agents=[spec], clock=fixed_clock
    ) as orchestra:
        await orchestra.register_agent(spec.default_profile("pythagoras-001"))
        allocation = await orchestra.orchestrate_task(
            {
                "id": "lit-1",
                "description": "Find sources on quantum error correction",
                "required_skills": ["statistics"],
                "success_criteria": ["sources"],
            }
        )
        execution = await orchestra.monitor_task_execution(allocation.allocation_id)
        state_dump = json.dumps(orchestra.state(), default=str)

    # The tool really ran with the credential, and the agent saw only the redacted echo.
    assert execution["status"] == "completed" and execution["result"] == result
    assert api.calls.last.request.headers["Authorization"] == f"Bearer {SECRET}"
    tool_message = model.calls[1][-1]
    assert (
        tool_message.type == "tool"
        and "[REDACTED]" in tool_message.content
        and "Surface codes" in tool_message.content
    )
    model.assert_complete()

    files = sorted(p for p in data.iterdir() if p.is_file())
    names = {p.name for p in files}
    assert {"checkpoints.sqlite", "store.sqlite"} <= names
    blobs = b"".join(p.read_bytes() for p in files)  # includes any -wal/-shm files left
    assert result.encode() in blobs  # the search does look at the saved state
    assert SECRET.encode() not in blobs
    assert SECRET not in state_dump and result in state_dump
    logged = caplog.text + "".join(repr(r.args) + r.getMessage() for r in caplog.records)
    assert caplog.records and SECRET not in logged
    client = client_of(tool)
    assert SECRET not in repr(vars(client)) + repr(vars(client.spec)) + repr(tool.__dict__)
