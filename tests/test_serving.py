"""`stellar-graph serve`: LangServe routes for the orchestra and its agents, thread from a header,
runs serialised per thread, API-key auth, /healthz, /metrics, and the playground in Chromium.

The real server runs as a subprocess (the console script) and is called with
``langserve.RemoteRunnable``; the lifespan and error paths are also checked in-process.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from langserve import RemoteRunnable

from stellar_graph import ATLAS, EDISON, LILITH, PYTHAGORAS, OrchestraConfig, create_orchestra
from stellar_graph.cli import main
from stellar_graph.persistence import open_persistence
from stellar_graph.serving import API_KEY_HEADER, THREAD_HEADER, create_app, prometheus_text
from tests.servers import safe_env, stellar_server

KEY = "test-key-5f3a9c1e77"
BAD_KEY = "wrong-key-0b1d2e"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _task(task_id: str, skill: str) -> dict[str, object]:
    return {"id": task_id, "description": f"Work on {task_id}", "required_skills": [skill]}


@dataclass(frozen=True)
class Served:
    url: str
    log: Path

    def orchestra(self, thread: str, *, key: str | None = KEY) -> RemoteRunnable:
        headers = {THREAD_HEADER: thread} | ({API_KEY_HEADER: key} if key else {})
        return RemoteRunnable(f"{self.url}/orchestra/", headers=headers, timeout=60)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`stellar-graph serve` with an API key, SQLite under a temp dir, on a free port."""
    root = tmp_path_factory.mktemp("serve")
    log = root / "server.log"
    # Module scope runs before conftest's per-test guard: set the same safe environment here.
    args = ["serve", "--host", "127.0.0.1", "--data-dir", str(root / "data"), "--log-level", "debug"]
    with stellar_server(args, log=log, env=safe_env(STELLAR_GRAPH_API_KEY=KEY)) as url:
        yield Served(url, log)


@pytest.mark.slow
def test_remote_runnable_invoke_and_stream_keep_state_on_the_header_thread(served: Served) -> None:
    remote = served.orchestra("alpha")
    out = remote.invoke(
        {
            "register_agents": [
                LILITH.default_profile("lilith-001"),
                PYTHAGORAS.default_profile("pythagoras-001"),
            ],
            "submit_tasks": [_task("risk", "risk_analysis"), _task("forecast", "statistics")],
        }
    )
    assert {t: (r["agent_id"], r["status"]) for t, r in out["tasks"].items()} == {
        "risk": ("lilith-001", "completed"),
        "forecast": ("pythagoras-001", "completed"),
    }
    assert out["allocations"]["alloc-risk"]["agent_id"] == "lilith-001"
    assert out["tasks"]["risk"]["result"].startswith("[simulated] lilith-001")

    chunks = list(remote.stream({"submit_tasks": [_task("proof", "mathematics")]}))
    nodes = [next(iter(c)) for c in chunks]
    assert nodes[:4] == ["intake", "monitor", "allocator", "dispatch"]  # the control run that placed it
    assert chunks[3]["dispatch"]["tasks"]["proof"]["status"] == "running"  # its task run started
    applied = [c["monitor"] for c in chunks[4:] if "proof" in ((c.get("monitor") or {}).get("tasks") or {})]
    assert applied[0]["tasks"]["proof"]["status"] == "completed"  # the next control run applied it

    board = remote.invoke({})["tasks"]  # a run with no input: the thread's board so far
    assert set(board) == {"risk", "forecast", "proof"}
    assert served.orchestra("beta").invoke({}).get("tasks", {}) == {}  # threads are separate


@pytest.mark.slow
def test_without_or_with_a_wrong_api_key_requests_get_401(served: Served) -> None:
    for key in (None, BAD_KEY):
        remote = served.orchestra("alpha", key=key)
        with pytest.raises(httpx.HTTPStatusError) as invoked:
            remote.invoke({})
        assert invoked.value.response.status_code == 401
        with pytest.raises(httpx.HTTPStatusError) as streamed:
            list(remote.stream({}))
        assert streamed.value.response.status_code == 401
    for path in ("/metrics", "/orchestra/playground/", "/agents/atlas/input_schema", "/docs"):
        assert httpx.get(served.url + path).status_code == 401, path
    health = httpx.get(f"{served.url}/healthz")
    assert health.status_code == 200
    assert health.json()["checkpointer"] == "sqlite"


@pytest.mark.slow
async def test_concurrent_runs_on_one_thread_lose_no_update(served: Served) -> None:
    remote = served.orchestra("busy")
    await remote.ainvoke({"register_agents": [EDISON.default_profile("edison-001", capacity=10)]})
    tasks = [_task(f"part-{i}", "engineering") for i in range(6)]
    await asyncio.gather(*(remote.ainvoke({"submit_tasks": [t]}) for t in tasks))
    out = await remote.ainvoke({})
    assert set(out["tasks"]) == {t["id"] for t in tasks}
    assert out["metrics"]["tasks_submitted"] == 6


@pytest.mark.slow
def test_metrics_are_prometheus_text_from_the_thread_state(served: Served) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    remote = served.orchestra("metered")
    out = remote.invoke(
        {
            "register_agents": [ATLAS.default_profile("atlas-001")],
            "submit_tasks": [_task("ethics-1", "ethics"), _task("ethics-2", "ethics")],
        }
    )
    completed = sum(t["status"] == "completed" for t in out["tasks"].values())
    response = httpx.get(f"{served.url}/metrics", headers={API_KEY_HEADER: KEY})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, s.labels.get("status")): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
        if s.labels.get("thread") == "metered"
    }
    assert samples[("stellar_graph_tasks_completed_total", None)] == completed == 2
    assert samples[("stellar_graph_tasks_submitted_total", None)] == 2
    assert samples[("stellar_graph_tasks", "completed")] == 2
    assert samples[("stellar_graph_agents", None)] == 1


@pytest.mark.slow
def test_each_agent_type_is_served_statelessly(served: Served) -> None:
    remote = RemoteRunnable(
        f"{served.url}/agents/lilith/", headers={API_KEY_HEADER: KEY}, timeout=60
    )
    out = remote.invoke(
        {"task": _task("audit", "risk_analysis"), "agent": LILITH.default_profile("lilith-009")}
    )
    assert out["report"]["status"] == "completed"
    assert out["report"]["agent_id"] == "lilith-009"
    assert out["report"]["simulated"] is True


def _require_chromium() -> None:
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing; .ci/run installs Debian's `chromium`.")
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium); CI installs it")


@pytest.mark.slow
def test_playground_renders_in_headless_chromium(served: Served, tmp_path: Path) -> None:
    _require_chromium()
    from PIL import Image, ImageStat
    from playwright.sync_api import expect, sync_playwright

    shot, errors = tmp_path / "playground.png", []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(
                viewport={"width": 1280, "height": 900}, extra_http_headers={API_KEY_HEADER: KEY}
            )
            page = context.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            response = page.goto(f"{served.url}/orchestra/playground/")
            assert response is not None and response.status == 200
            start = page.get_by_role("button", name="Start", exact=True)
            expect(start).to_be_visible(timeout=20_000)
            expect(page.get_by_text("Try it")).to_be_visible()
            expect(page.get_by_text("Submit Tasks")).to_be_visible()  # the orchestra's input schema
            start.click()  # an empty control run on the default thread, streamed through /stream_log
            expect(page.get_by_text("Output", exact=True)).to_be_visible(timeout=20_000)
            expect(page.get_by_text("allocation_strategy").first).to_be_visible()  # the allocator's update
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert errors == []
    with Image.open(shot) as image:
        assert ImageStat.Stat(image.convert("L")).stddev[0] > 10  # not blank, not header-only


def _playground_row(page: Any, label: str, values: dict[str, str]) -> None:
    """Add a row to the playground's table for the input list ``label`` and type ``values``
    into it, column by header (a text field, a number, or a choice)."""
    box = page.get_by_text(label, exact=True).locator("xpath=ancestor::*[.//table][1]")
    box.locator("button:has(svg)").first.click()  # the section's "+"
    headers = [h.strip() for h in box.locator("thead tr").last.locator("th").all_inner_texts()]
    cells = box.locator("tbody tr").first.locator("td")
    for column, value in values.items():
        field = cells.nth(headers.index(column)).locator("input, textarea, select").first
        if field.evaluate("e => e.tagName") == "SELECT":
            field.select_option(value)
        else:
            field.fill(value)


@pytest.mark.slow
def test_a_person_logs_in_fills_an_agent_and_a_task_in_typed_fields_and_sees_the_result(
    served: Served, tmp_path: Path
) -> None:
    """No header injection: the page sends the browser to /login, the key sets a session cookie
    (not the key itself), the agent and the task are rows of typed fields (lists as
    comma-separated text), and the output shows the allocation and the finished task."""
    _require_chromium()
    from playwright.sync_api import expect, sync_playwright

    shot, errors = tmp_path / "playground-task.png", []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1500, "height": 1200})
            page = context.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(f"{served.url}/orchestra/playground/")
            assert "/login" in page.url  # sent to log in, not shown a bare 401
            page.get_by_label("API key").fill(BAD_KEY)
            page.get_by_role("button", name="Log in").click()
            expect(page.get_by_role("alert")).to_contain_text("Wrong key")
            page.get_by_label("API key").fill(KEY)
            page.get_by_role("button", name="Log in").click()
            start = page.get_by_role("button", name="Start", exact=True)
            expect(start).to_be_visible(timeout=20_000)
            assert page.url.endswith("/orchestra/playground/")
            session = {c["name"]: c for c in context.cookies()}["stellar_graph_session"]
            assert session["httpOnly"] and session["sameSite"] == "Strict" and KEY not in session["value"]

            _playground_row(page, "Register Agents", {"Agent Id": "pythagoras-web", "Agent Type": "PythagorasAgent",
                                                      "Capabilities": "statistics, forecasting", "Capacity": "2"})
            _playground_row(page, "Submit Tasks", {"Id": "web-task-1", "Description": "Compute the mean",
                                                   "Priority": "high", "Required Skills": "statistics"})
            expect(start).to_be_enabled()
            start.click()
            output = page.get_by_text("Output", exact=True).locator("xpath=ancestor::*[1]/..")
            expect(page.get_by_text('"task_completed"').first).to_be_visible(timeout=30_000)
            text = output.inner_text()
            assert '"agent_id": "pythagoras-web"' in text and '"task_allocated"' in text
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert errors == []
    # The cookie works for API calls too; with neither cookie nor header, 401 as before.
    cookies = {"stellar_graph_session": session["value"]}
    board = httpx.post(f"{served.url}/orchestra/invoke", json={"input": {}}, cookies=cookies)
    assert board.status_code == 200
    assert board.json()["output"]["tasks"]["web-task-1"]["status"] == "completed"
    assert board.json()["output"]["tasks"]["web-task-1"]["required_skills"] == ["statistics"]
    assert httpx.post(f"{served.url}/orchestra/invoke", json={"input": {}}).status_code == 401


@pytest.mark.slow
def test_the_api_key_never_reaches_the_server_log(served: Served) -> None:
    served.orchestra("alpha").invoke({})
    with pytest.raises(httpx.HTTPStatusError):
        served.orchestra("alpha", key=BAD_KEY).invoke({})
    text = served.log.read_text()
    assert "POST /orchestra/invoke" in text  # the log is there (debug level) ...
    assert KEY not in text and BAD_KEY not in text  # ... without either key


# -- in-process: lifespan, validation, recovery --------------------------------------------


def test_before_the_lifespan_health_and_metrics_answer_503() -> None:
    client = TestClient(
        create_app({"persistence": {"backend": "memory"}})
    )  # no `with`: no lifespan
    assert client.get("/healthz").status_code == 503
    assert client.get("/healthz").json()["ok"] is False
    assert client.get("/metrics").status_code == 503
    assert client.post("/orchestra/invoke", json={"input": {}}).status_code == 503


def test_without_a_configured_key_routes_are_open_and_the_default_thread_is_used() -> None:
    app = create_app({"persistence": {"backend": "memory"}}, thread_id="main-board")
    with TestClient(app) as client:
        assert client.get("/healthz").json() == {
            "ok": True,
            "checkpointer": "memory",
            "store": "memory",
            "default_thread": "main-board",
        }
        body = {
            "register_agents": [ATLAS.default_profile("atlas-001")],
            "submit_tasks": [_task("t1", "ethics")],
        }
        assert client.post("/orchestra/invoke", json={"input": body}).status_code == 200
        again = client.post(
            "/orchestra/invoke", json={"input": {}}, headers={THREAD_HEADER: "main-board"}
        )
        assert set(again.json()["output"]["tasks"]) == {"t1"}
        assert 'thread="main-board"' in client.get("/metrics").text
        # The playground's form renderer fails on nullable fields: the schema leaves them out.
        assert '"null"' not in client.get("/orchestra/input_schema").text


def test_bad_input_is_422_with_the_fix_and_writes_nothing() -> None:
    with TestClient(create_app({"persistence": {"backend": "memory"}})) as client:
        headers = {THREAD_HEADER: "strict"}
        bad = client.post(
            "/orchestra/invoke", json={"input": {"submit_tasks": [{"id": "t1"}]}}, headers=headers
        )
        assert bad.status_code == 422
        assert "`description`" in bad.json()["detail"] and "Fix" in bad.json()["detail"]
        unknown = client.post(
            "/orchestra/invoke",
            headers=headers,
            json={
                "input": {
                    "register_agents": [
                        {"agent_id": "x-1", "agent_type": "NoSuchAgent", "capabilities": ["a"]}
                    ]
                },
            },
        )
        assert unknown.status_code == 422 and "NoSuchAgent" in unknown.json()["detail"]
        strategy = client.post(
            "/orchestra/invoke", json={"input": {"allocation_strategy": "magic"}}, headers=headers
        )
        assert strategy.status_code == 422 and "'magic'" in strategy.json()["detail"]
        bad_thread = client.post(
            "/orchestra/invoke", json={"input": {}}, headers={THREAD_HEADER: "a b"}
        )
        assert bad_thread.status_code == 400
        board = client.post("/orchestra/invoke", json={"input": {}}, headers=headers).json()[
            "output"
        ]
        assert (
            board.get("tasks", {}) == {} and board.get("metrics", {}).get("tasks_submitted", 0) == 0
        )


async def test_a_run_left_unfinished_by_a_dead_server_is_finished_first(tmp_path: Path) -> None:
    config = {"persistence": {"data_dir": str(tmp_path)}}
    thread = {"configurable": {"thread_id": "crashed"}}
    async with open_persistence(OrchestraConfig.load(config).persistence) as (saver, store):
        # Stop after dispatch, as if the process had died while the agents ran.
        halted = create_orchestra(config).compile(
            checkpointer=saver, store=store, interrupt_after=["dispatch"]
        )
        await halted.ainvoke(
            {
                "register_agents": [ATLAS.default_profile("atlas-001")],
                "submit_tasks": [_task("t1", "ethics")],
            },
            thread,
        )
        assert (await halted.aget_state(thread)).values["tasks"]["t1"]["status"] == "running"
    with TestClient(create_app(config)) as client:
        out = client.post(
            "/orchestra/invoke",
            json={"input": {"submit_tasks": [_task("t2", "ethics")]}},
            headers={THREAD_HEADER: "crashed"},
        ).json()["output"]
    assert {t: r["status"] for t, r in out["tasks"].items()} == {
        "t1": "completed",
        "t2": "completed",
    }


def test_serve_with_a_bad_config_exits_2_with_the_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("task_allocation: {strategy: magic}\n")
    assert main(["serve", "--config", str(bad), "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "task_allocation.strategy" in err


def test_prometheus_text_names_escapes_and_parses() -> None:
    from prometheus_client.parser import text_string_to_metric_families

    text = prometheus_text(
        {
            'odd "thread"\n\\': {
                "metrics": {
                    "tasks_completed": 3,
                    "latency_seconds_total": 1.5,
                    "flag": True,
                    "tokens/in": 7,
                },
                "tasks": {"a": {"status": "completed"}, "b": {"status": "failed"}},
                "agents": {"x": {}},
            },
        }
    )
    assert "# TYPE stellar_graph_tasks_completed_total counter" in text
    assert (
        "stellar_graph_latency_seconds_total{" in text and "latency_seconds_total_total" not in text
    )
    assert "flag" not in text  # booleans are not counters
    assert "stellar_graph_tokens_in_total{" in text  # names are sanitised
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["stellar_graph_tasks_completed"].type == "counter"
    (sample,) = families["stellar_graph_tasks_completed"].samples
    assert sample.labels == {"thread": 'odd "thread"\n\\'} and sample.value == 3
    assert {s.labels["status"]: s.value for s in families["stellar_graph_tasks"].samples} == {
        "completed": 1,
        "failed": 1,
    }
    assert families["stellar_graph_agents"].samples[0].value == 1


def test_invoke_answers_with_its_tasks_even_those_that_left_the_board(tmp_path: Path) -> None:
    """25 tasks: the control state keeps the newest 20 finished ones; the response has all 25."""
    with TestClient(create_app({"persistence": {"data_dir": str(tmp_path)}})) as client:
        headers = {THREAD_HEADER: "many"}
        agent = {"input": {"register_agents": [EDISON.default_profile("edison-001", capacity=30)]}}
        assert client.post("/orchestra/invoke", json=agent, headers=headers).status_code == 200
        tasks = [_task(f"part-{i}", "engineering") for i in range(25)]
        out = client.post("/orchestra/invoke", json={"input": {"submit_tasks": tasks}}, headers=headers).json()["output"]
        quick = client.post(
            "/orchestra/invoke", json={"input": {"submit_tasks": [_task("later", "engineering")]}},
            headers={**headers, "X-Wait": "allocation"},
        ).json()["output"]
    finished = {t: r["status"] for t, r in out["tasks"].items() if t.startswith("part-")}
    assert set(finished) == {t["id"] for t in tasks} and set(finished.values()) <= {"completed", "failed"}
    assert quick["tasks"]["later"]["status"] in {"allocated", "running"}  # answered at allocation


BAD_BODIES = [
    ({"input": {"set_agent_health": [{}]}}, "set_agent_health.0.agent_id"),
    ({"input": {"set_agent_health": [{"agent_id": "a", "healthy": "yes"}]}}, "set_agent_health.0.healthy"),
    ({"input": {"deliver_messages": [{}]}}, "deliver_messages.0.agent_id"),
    ({"input": {"deliver_messages": [{"agent_id": "a", "message": {}}]}}, "deliver_messages.0.message"),
    ({"input": {"start_collaborations": [{}]}}, "start_collaborations.0.goal"),
    ({"input": {"task_outcomes": [{"task_id": "t"}]}}, "task_outcomes.0.attempt"),
    ({"input": {"escalate_tasks": "t1"}}, "escalate_tasks"),
    ({"input": {"submit_tasks": {"id": "x"}}}, "submit_tasks"),
    ({"input": {"submit_task": []}}, "submit_task"),
    ({"input": "abc"}, "(root)"),
    ({"input": {}, "config": None}, "config"),
    ({"input": {}, "kwargs": None}, "kwargs"),
]


@pytest.mark.parametrize("route", ["invoke", "stream", "stream_log", "stream_events"])
def test_malformed_input_is_422_naming_the_field_and_never_blocks_the_thread(
    tmp_path: Path, route: str
) -> None:
    """Issue 14: `set_agent_health: [{}]` answered 500 and every later request on the thread too."""
    app = create_app({"persistence": {"data_dir": str(tmp_path)}})  # the default backend: SQLite
    headers = {THREAD_HEADER: "poisoned"}
    with TestClient(app) as client:
        for body, field in BAD_BODIES:
            answer = client.post(f"/orchestra/{route}", json=body, headers=headers)
            assert answer.status_code == 422, (body, answer.text)
            assert f"`{field}`" in answer.json()["detail"] and "Fix" in answer.json()["detail"], answer.text
        good = {
            "register_agents": [PYTHAGORAS.default_profile("pythagoras-001")],
            "submit_tasks": [_task("t1", "statistics")],
        }
        answer = client.post("/orchestra/invoke", json={"input": good}, headers=headers)
        assert answer.status_code == 200, answer.text
        assert answer.json()["output"]["tasks"]["t1"]["status"] == "completed"


def test_bodies_langserve_would_answer_500_get_422_on_every_run_route(tmp_path: Path) -> None:
    """Found by schemathesis: a non-UTF-8 body and a batch whose `inputs` is null were 500s."""
    app = create_app({"persistence": {"data_dir": str(tmp_path)}})
    bodies = [
        (b"\xf6\x95 not utf-8", "UTF-8"),
        (b'{"inputs": null, "config": [], "kwargs": {}}', "`inputs`"),
        (b'{"inputs": {"a": 1}}', "`inputs`"),
    ]
    with TestClient(app) as client:
        for base in ("/orchestra", "/agents/atlas", "/orchestra/c/0"):
            for route in ("invoke", "batch", "stream", "stream_log", "stream_events"):
                for raw, named in bodies:
                    if named == "`inputs`" and route != "batch":
                        continue
                    answer = client.post(f"{base}/{route}", content=raw, headers={"content-type": "application/json"})
                    assert answer.status_code == 422, (base, route, raw, answer.text)
                    assert named in answer.json()["detail"] and "Fix" in answer.json()["detail"]


@pytest.mark.filterwarnings("ignore:astream_log is deprecated")  # LangServe's route calls it
@pytest.mark.parametrize("route", ["stream_log", "stream_events"])
def test_streaming_a_real_run_ends_without_an_error_event(tmp_path: Path, route: str) -> None:
    app = create_app({"persistence": {"data_dir": str(tmp_path)}})
    body = {
        "input": {
            "register_agents": [PYTHAGORAS.default_profile("pythagoras-001")],
            "submit_tasks": [_task("t1", "statistics")],
        },
        **({"version": "v2"} if route == "stream_events" else {}),
    }
    with TestClient(app) as client:
        answer = client.post(f"/orchestra/{route}", json=body, headers={THREAD_HEADER: "s"})
    events = [line.split(":", 1)[1].strip() for line in answer.text.splitlines() if line.startswith("event:")]
    assert answer.status_code == 200 and events[-1] == "end" and "error" not in events, answer.text[-500:]
    assert '"completed"' in answer.text


def test_agent_routes_answer_422_naming_the_missing_field() -> None:
    with TestClient(create_app({"persistence": {"backend": "memory"}})) as client:
        for body, field in [
            ({"input": {}}, "task"),
            ({"input": {"task": {"id": "t"}, "agent": {"agent_id": "a"}}}, "task.description"),
            ({"input": {"task": {"id": "t", "description": "d"}, "agent": {}}}, "agent.agent_id"),
        ]:
            answer = client.post("/agents/atlas/invoke", json=body)
            assert answer.status_code == 422 and f"`{field}`" in answer.json()["detail"], answer.text


def test_an_empty_api_key_variable_refuses_to_serve(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STELLAR_GRAPH_API_KEY", " ")
    with pytest.raises(Exception, match="STELLAR_GRAPH_API_KEY` is set but empty") as caught:
        create_app({"persistence": {"backend": "memory"}})
    assert "unset it" in str(caught.value)


def test_metrics_labels_and_open_threads_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 14: /metrics kept one `thread` label per thread ever served (330 KB at 310 threads)."""
    import stellar_graph.serving as serving

    monkeypatch.setattr(serving, "MAX_LIVE_THREADS", 3)
    with TestClient(create_app({"persistence": {"backend": "memory"}})) as client:
        body = {"register_agents": [PYTHAGORAS.default_profile("pythagoras-001")]}
        for i in range(8):
            answer = client.post("/orchestra/invoke", json={"input": body}, headers={THREAD_HEADER: f"t{i}"})
            assert answer.status_code == 200
        labels = set(re.findall(r'thread="([^"]+)"', client.get("/metrics").text))
        assert labels <= {"stellar-orchestra", "t5", "t6", "t7"} and {"t6", "t7"} <= labels, labels
        again = client.post("/orchestra/invoke", json={"input": body}, headers={THREAD_HEADER: "t0"})
        assert again.status_code == 422 and "pythagoras-001" in again.text  # reopened with its state


def test_an_escalated_run_shows_its_interrupt_and_is_resumed_over_http(tmp_path: Path) -> None:
    """Issue 14: invoke showed no `__interrupt__` and serve could not resume escalated tasks."""
    from stellar_graph import AgentAnswer
    from stellar_graph.testing import ScriptedChatModel, structured

    down = ConnectionError("model endpoint down")
    model = ScriptedChatModel(responses=[down, down, down, structured(AgentAnswer(result="ok", criteria_met=[], confidence=1.0))])
    config = {"persistence": {"data_dir": str(tmp_path)},
              "emergency_protocols": {"recovery_strategies": ["retry", "escalate"], "retry_initial_interval_seconds": 0.01}}
    headers = {THREAD_HEADER: "escalations"}
    with TestClient(create_app(config, model=model)) as client:
        body = {"register_agents": [PYTHAGORAS.default_profile("pythagoras-001")], "submit_tasks": [_task("t1", "statistics")]}
        out = client.post("/orchestra/invoke", json={"input": body}, headers=headers).json()["output"]
        assert out["tasks"]["t1"]["status"] == "escalating"
        [pending] = out["interrupts"]
        assert pending["value"]["tasks"][0]["task_id"] == "t1" and "/orchestra/resume" in out["resume"]
        bad = client.post("/orchestra/resume", json={"decisions": {"t1": {"action": "maybe"}}}, headers=headers)
        assert bad.status_code == 422 and "`decisions.t1.action`='maybe'" in bad.json()["detail"]
        nobody = client.post("/orchestra/resume", json={"decisions": {"t1": {"action": "reassign"}}}, headers=headers)
        assert nobody.status_code == 422 and "reassign needs a registered `agent_id`, got None" in nobody.json()["detail"]
        unknown = client.post("/orchestra/resume", json={"decisions": {"t9": {"action": "retry"}}}, headers=headers)
        assert unknown.status_code == 422 and "'t9' is not waiting" in unknown.json()["detail"]
        done = client.post("/orchestra/resume", json={"decisions": {"t1": {"action": "retry"}}}, headers=headers)
        assert done.status_code == 200, done.text
        assert done.json()["output"]["tasks"]["t1"]["status"] == "completed" and not done.json()["output"].get("interrupts")
        none_left = client.post("/orchestra/resume", json={"decisions": {"t1": {"action": "retry"}}}, headers=headers)
        assert none_left.status_code == 422 and "No task of this thread is waiting" in none_left.json()["detail"]


def test_login_sets_a_session_cookie_only_for_the_right_key_and_never_redirects_off_site(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STELLAR_GRAPH_API_KEY", KEY)
    app = create_app({"persistence": {"backend": "memory"}})
    with TestClient(app, follow_redirects=False) as client:
        page = client.get("/orchestra/playground/", headers={"accept": "text/html"})
        assert page.status_code == 303 and page.headers["location"] == "/login?next=/orchestra/playground/"
        api = client.get("/orchestra/input_schema")  # not a browser: a 401 naming both ways in
        assert api.status_code == 401 and "X-API-Key" in api.json()["detail"] and "/login" in api.json()["detail"]
        wrong = client.post("/login", data={"key": BAD_KEY, "next": "/metrics"})
        assert wrong.status_code == 401 and "stellar_graph_session" not in wrong.cookies
        for target in ("//evil.example/x", "https://evil.example/", "/\\\\evil.example"):
            right = client.post("/login", data={"key": KEY, "next": target})
            assert right.status_code == 303 and right.headers["location"] == "/orchestra/playground/", target
        right = client.post("/login", data={"key": KEY, "next": "/metrics"})
        assert right.headers["location"] == "/metrics"
        cookie = right.cookies["stellar_graph_session"]
        assert KEY not in cookie
        assert client.get("/metrics").status_code == 200  # the client keeps the cookie
        client.cookies.clear()
        client.cookies.set("stellar_graph_session", cookie[:-1] + ("0" if cookie[-1] != "0" else "1"))
        assert client.get("/metrics").status_code == 401
        echoed = client.get("/login", params={"next": '/"><script>alert(1)</script>'})
        assert "<script>alert(1)" not in echoed.text  # the page escapes what it echoes


def test_metrics_labels_stay_bounded_under_a_thousand_threads() -> None:
    from prometheus_client.parser import text_string_to_metric_families

    states = {f"thread-{i:04d}": {"metrics": {"tasks_completed": 1}, "tasks": {"a": {"status": "completed"}},
                                  "agents": {"x": {}}} for i in range(1000)}
    families = {f.name: f for f in text_string_to_metric_families(prometheus_text(states, max_threads=64))}
    threads = {s.labels["thread"] for s in families["stellar_graph_tasks_completed"].samples}
    assert len(threads) == 65 and "_other" in threads  # 64 named, the rest summed
    total = sum(s.value for s in families["stellar_graph_tasks_completed"].samples if s.name.endswith("_total"))
    assert total == 1000  # nothing lost by the cap
    (other,) = [s for s in families["stellar_graph_agents"].samples if s.labels["thread"] == "_other"]
    assert other.value == 936


def test_metrics_speak_openmetrics_and_carry_process_and_gc_metrics() -> None:
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

    with TestClient(create_app({"persistence": {"backend": "memory"}})) as client:
        client.post("/orchestra/invoke", json={"input": {"register_agents": [ATLAS.default_profile("atlas-001")]}},
                    headers={THREAD_HEADER: "om"})
        plain = client.get("/metrics")
        assert plain.headers["content-type"].startswith("text/plain; version=0.0.4")
        open_metrics = client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert open_metrics.headers["content-type"].startswith("application/openmetrics-text")
    assert open_metrics.text.endswith("# EOF\n")
    names = {f.name for f in text_string_to_metric_families(open_metrics.text)}
    assert {"stellar_graph_agents", "process_resident_memory_bytes", "python_gc_collections", "python_info"} <= names
