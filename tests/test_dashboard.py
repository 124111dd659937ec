"""The live dashboard (`/dashboard` on `stellar-graph serve`) in headless Chromium.

A person logs in, opens the page, and tasks submitted through the API move from queued to running
to completed on the page, each change shown within a second of the moment the orchestra recorded
it (the page keeps what it showed and when in ``window.__dashboard``). An escalated task is
reassigned from the page and completes. The page asks nothing of any other host.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stellar_graph import ATLAS, PYTHAGORAS
from stellar_graph.dashboard import board_delta
from stellar_graph.serving import API_KEY_HEADER, THREAD_HEADER
from tests.test_serving import CHROMIUM, CHROMIUM_ARGS, KEY, _command, _free_port, _require_chromium

pytestmark = pytest.mark.slow

CONFIG = """
llm: {simulated_seconds: 1.0}
emergency_protocols: {recovery_strategies: [retry, escalate], retry_initial_interval_seconds: 0.01}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("dashboard")
    (root / "orchestra.yaml").write_text(CONFIG, encoding="utf-8")
    port, log = _free_port(), root / "server.log"
    env = {**os.environ, "STELLAR_GRAPH_API_KEY": KEY, "OPENAI_API_KEY": "sk-test-dummy"}
    for name in ("STELLAR_GRAPH_MODEL", "STELLAR_GRAPH_DATABASE_URL", "OPENAI_BASE_URL"):
        env.pop(name, None)
    cmd = [*_command(), "serve", "--port", str(port), "--data-dir", str(root / "data"),
           "--config", str(root / "orchestra.yaml")]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=15)


def _submit(url: str, thread: str, body: dict[str, Any]) -> None:
    headers = {API_KEY_HEADER: KEY, THREAD_HEADER: thread, "X-Wait": "allocation"}
    response = httpx.post(f"{url}/orchestra/invoke", json={"input": body}, headers=headers, timeout=60)
    assert response.status_code == 200, response.text


def _task(task_id: str, skill: str) -> dict[str, Any]:
    return {"id": task_id, "description": f"Work on {task_id}", "required_skills": [skill]}


def test_tasks_move_across_the_board_live_and_an_escalation_is_resolved_from_the_page(
    server: str, tmp_path: Path
) -> None:
    _require_chromium()
    from playwright.sync_api import expect, sync_playwright

    thread, requests, errors = "live-board", [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context().new_page()
            page.on("request", lambda r: requests.append(r.url))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{server}/dashboard?thread={thread}")
            page.get_by_label("API key").fill(KEY)  # sent to /login first, then back here
            page.get_by_role("button", name="Log in").click()
            expect(page.locator("#connection")).to_have_text("live", timeout=20_000)
            assert page.locator("#thread").input_value() == thread

            _submit(server, thread, {"register_agents": [ATLAS.default_profile("atlas-001")],
                                     "submit_tasks": [_task(f"t{i}", "ethics") for i in range(3)]})
            running = page.locator('[data-column="running"] .card')
            expect(running).to_have_count(3, timeout=5_000)  # each simulated answer takes 1 s
            finished = page.locator('[data-column="finished"] .card[data-status="completed"]')
            expect(finished).to_have_count(3, timeout=15_000)
            seen = page.evaluate("window.__dashboard.seen")
            lags = page.evaluate("window.__dashboard.lags")
            for i in range(3):
                assert {"running", "completed"} <= set(seen[f"t{i}"]), seen
            shown = [lag for lag in lags if lag["status"] in {"running", "completed"}]
            assert len(shown) == 6 and max(lag["ms"] for lag in shown) <= 1_000, lags
            print(f"\ndashboard: event-to-screen lag max {max(lag['ms'] for lag in shown)} ms over {len(shown)} changes")

            page.locator('.card[data-task="t0"]').click()  # the allocation's explanation
            expect(page.locator("#details-body")).to_contain_text("skills")

            hopeless = PYTHAGORAS.default_profile("pythagoras-009", reliability=0.01)  # fails in simulation
            _submit(server, thread, {"register_agents": [hopeless], "submit_tasks": [_task("calc", "statistics")]})
            decision = page.locator('.escalation[data-task="calc"]')
            expect(decision).to_be_visible(timeout=20_000)
            _submit(server, thread, {"register_agents": [PYTHAGORAS.default_profile("pythagoras-001")]})
            decision.get_by_label("reassign to").select_option("pythagoras-001")
            decision.get_by_role("button", name="reassign").click()
            calc = page.locator('[data-column="finished"] .card[data-task="calc"][data-status="completed"]')
            expect(calc).to_be_visible(timeout=20_000)
            expect(calc).to_contain_text("pythagoras-001")
            page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
        finally:
            browser.close()
    assert not errors, errors
    outside = [u for u in requests if not u.startswith(server)]
    assert not outside, outside  # no CDN, no fonts, no analytics: it works offline


def test_the_page_and_its_api_need_the_key(server: str) -> None:
    for path in ("/dashboard", "/dashboard/api/board", "/dashboard/api/stream", "/dashboard/static/dashboard.js"):
        assert httpx.get(server + path, timeout=10).status_code in {401, 303}, path
    board = httpx.get(f"{server}/dashboard/api/board?thread=nobody", headers={API_KEY_HEADER: KEY}, timeout=10)
    assert board.status_code == 200 and board.json()["tasks"] == {}


def test_a_delta_carries_the_records_a_step_changed() -> None:
    chunk = {"dispatch": {"tasks": {"t1": {"status": "running"}}, "events": [{"type": "task_allocated"}]},
             "monitor": {"tasks": {"t2": {"status": "completed"}}, "agents": {"a": {"healthy": True}}},
             "allocator": None}
    assert board_delta(chunk) == {
        "tasks": {"t1": {"status": "running"}, "t2": {"status": "completed"}},
        "agents": {"a": {"healthy": True}}, "events": [{"type": "task_allocated"}],
    }
