"""The live dashboard (`/dashboard` on `stellar-graph serve`) in headless Chromium.

A person logs in, opens the page, and tasks submitted through the API move from queued to running
to completed on the page, each change shown within a second of the moment the orchestra recorded
it (the page keeps what it showed and when in ``window.__dashboard``). An escalated task is
reassigned from the page and completes. The page asks nothing of any other host.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from stellar_graph import ATLAS, PYTHAGORAS
from stellar_graph.dashboard import board_delta
from stellar_graph.serving import API_KEY_HEADER, THREAD_HEADER
from tests.servers import cli, safe_env, stellar_server
from tests.test_serving import CHROMIUM, CHROMIUM_ARGS, KEY, _require_chromium

pytestmark = pytest.mark.slow

CONFIG = """
llm: {simulated_seconds: 1.0}
emergency_protocols: {recovery_strategies: [retry, escalate], retry_initial_interval_seconds: 0.01}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("dashboard")
    (root / "orchestra.yaml").write_text(CONFIG, encoding="utf-8")
    args = ["serve", "--data-dir", str(root / "data"), "--config", str(root / "orchestra.yaml")]
    with stellar_server(args, log=root / "server.log", env=safe_env(STELLAR_GRAPH_API_KEY=KEY)) as url:
        yield url


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
                                     "submit_tasks": [_task(f"t{i}", "ethics") for i in range(4)]})
            running = page.locator('[data-column="running"] .card')
            expect(running).to_have_count(3, timeout=5_000)  # capacity 3; each simulated answer takes 1 s
            expect(page.locator('[data-column="waiting"] .card[data-task="t3"]')).to_have_attribute("data-status", "queued")
            finished = page.locator('[data-column="finished"] .card[data-status="completed"]')
            expect(finished).to_have_count(4, timeout=15_000)
            seen = page.evaluate("window.__dashboard.seen")
            lags = page.evaluate("window.__dashboard.lags")
            assert list(seen["t3"]) == ["pending", "queued", "running", "completed"], seen  # in order, no reload
            for i in range(3):
                assert {"running", "completed"} <= set(seen[f"t{i}"]), seen
            shown = [lag for lag in lags if lag["status"] in {"running", "completed"}]
            assert len(shown) == 8 and max(lag["ms"] for lag in shown) <= 1_000, lags
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
    for path in ("/dashboard/api/board", "/dashboard/api/stream"):
        bad = httpx.get(f"{server}{path}?thread=../etc", headers={API_KEY_HEADER: KEY}, timeout=10)
        assert bad.status_code == 422 and "Invalid `thread`" in bad.text, path


def test_a_delta_carries_the_records_a_step_changed() -> None:
    chunk = {"dispatch": {"tasks": {"t1": {"status": "running"}}, "events": [{"type": "task_allocated"}]},
             "monitor": {"tasks": {"t2": {"status": "completed"}}, "agents": {"a": {"healthy": True}}},
             "allocator": None}
    assert board_delta(chunk) == {
        "tasks": {"t1": {"status": "running"}, "t2": {"status": "completed"}},
        "agents": {"a": {"healthy": True}}, "events": [{"type": "task_allocated"}],
    }


ROOT = Path(__file__).resolve().parents[1]


def test_the_dashboard_of_a_finished_cli_run_reads_well(tmp_path: Path) -> None:
    """`stellar-graph run vegapunk`, then `stellar-graph dashboard` on its data directory: a
    screenshot a person can read, kept under reports/."""
    _require_chromium()
    from playwright.sync_api import expect, sync_playwright

    data = tmp_path / "data"
    run = subprocess.run([*cli(), "run", "vegapunk", "--data-dir", str(data), "--report", str(tmp_path / "r.json"),
                          "--quiet"], capture_output=True, text=True, timeout=180, check=False, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    shot = ROOT / "reports" / "dashboard-vegapunk.png"
    shot.parent.mkdir(exist_ok=True)
    with stellar_server(["dashboard", "--data-dir", str(data)], log=tmp_path / "server.log") as url:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                page.goto(f"{url}/dashboard")
                expect(page.locator('[data-column="finished"] .card')).to_have_count(10, timeout=15_000)
                refused = page.locator('[data-column="refused"] .card')
                expect(refused).to_contain_text("coral-survey")
                expect(refused).to_contain_text("refused · - · medium")
                expect(page.locator("#agents tbody tr")).to_have_count(5)
                expect(page.locator("#thread")).to_have_value(re.compile(r"^vegapunk-"))
                expect(page.locator("#chart-throughput canvas")).to_have_count(1)  # uPlot, shipped with the page
                expect(page.locator("#chart-latency canvas")).to_have_count(1)
                expect(page.locator("#utilisation .meter")).to_have_count(5)
                expect(page.locator("#summary")).to_contain_text("tokens: routing")  # the metrics tree
                expect(page.locator("#summary")).to_contain_text("0 (0 calls, 0% of all)")  # no routing LLM calls
                page.locator('.card[data-task="ethics-framework"]').click()
                expect(page.locator("#details-body")).to_contain_text("skills")
                page.screenshot(path=str(shot), full_page=True)
            finally:
                browser.close()
    assert shot.stat().st_size > 20_000


def test_a_thousand_tasks_on_the_board_first_paint_and_event_to_screen_are_measured(tmp_path: Path) -> None:
    _require_chromium()
    from playwright.sync_api import sync_playwright

    (tmp_path / "slow.yaml").write_text("llm: {simulated_seconds: 4.0}\n", encoding="utf-8")
    with stellar_server(["serve", "--data-dir", str(tmp_path / "data"), "--config", str(tmp_path / "slow.yaml")], log=tmp_path / "server.log") as url:
        agents = [spec.default_profile(f"{spec.name}-{i:03d}", capacity=3)
                  for i, spec in enumerate((ATLAS, PYTHAGORAS) * 5)]
        tasks = [_task(f"t{i:04d}", "ethics" if i % 2 else "statistics") for i in range(1000)]
        response = httpx.post(f"{url}/orchestra/invoke", json={"input": {"register_agents": agents, "submit_tasks": tasks}},
                              headers={THREAD_HEADER: "big", "X-Wait": "allocation"}, timeout=120)
        assert response.status_code == 200, response.text[:500]
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.goto(f"{url}/dashboard?thread=big")
                page.wait_for_function("window.__dashboard.firstPaintMs !== undefined", timeout=10_000)
                first_paint = page.evaluate("window.__dashboard.firstPaintMs")
                assert page.evaluate("window.__dashboard.firstPaintTasks") == 1000
                # 30 tasks run at a time, 4 s each: wait for a wave of changes pushed to the page
                page.wait_for_function("window.__dashboard.pipeline.length >= 10", timeout=20_000)
                lags = [lag["ms"] for lag in page.evaluate("window.__dashboard.lags")
                        if lag["status"] in {"running", "completed"} and lag["ms"] < 600_000]
                pipeline = page.evaluate("window.__dashboard.pipeline")
                draw = page.evaluate("window.__dashboard.drawMs")
            finally:
                browser.close()
    recorded = sorted(ms for ms in lags if ms >= 0)
    print(f"\ndashboard at 1,000 tasks: first paint {first_paint:.0f} ms, draw {draw:.0f} ms; event-to-screen "
          f"max {max(pipeline):.0f} ms over {len(pipeline)} pushed changes; record-to-screen (the orchestra's own "
          f"latency included) median {recorded[len(recorded) // 2]} ms, max {recorded[-1]} ms")
    # Measured and printed (510-950 ms first paint, 230-630 ms event-to-screen on this 2-core
    # machine while the server dispatches the first 30 runs); asserted with room for a loaded CI
    # host, so the test catches a page that stalls, not one run's noise.
    assert first_paint <= 3_000 and max(pipeline) <= 3_000 and len(recorded) >= 10


def test_a_state_delta_names_what_changed_left_and_arrived() -> None:
    from stellar_graph.dashboard import state_delta

    before = {"tasks": {"a": {"status": "running"}, "b": {"status": "queued"}},
              "events": [{"event_id": "e1"}, {"event_id": "e2"}]}
    after = {"tasks": {"a": {"status": "completed"}, "c": {"status": "queued"}},
             "events": [{"event_id": "e2"}, {"event_id": "e3"}]}
    assert state_delta(before, after) == {
        "tasks": {"a": {"status": "completed"}, "c": {"status": "queued"}, "b": None},
        "events": [{"event_id": "e3"}],
    }
    assert state_delta(after, after) == {}


def test_a_collaboration_shows_its_plan_bids_votes_and_outcome(tmp_path: Path) -> None:
    _require_chromium()
    from playwright.sync_api import expect, sync_playwright

    data = tmp_path / "data"
    run = subprocess.run([*cli(), "run", "collaboration", "--data-dir", str(data), "--report",
                          str(tmp_path / "r.json"), "--quiet"], capture_output=True, text=True, timeout=180,
                         check=False, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    with stellar_server(["dashboard", "--data-dir", str(data)], log=tmp_path / "server.log") as url:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.goto(f"{url}/dashboard")
                collaboration = page.locator(".collaboration").first
                expect(collaboration).to_contain_text("succeeded", timeout=15_000)
                expect(collaboration).to_contain_text("s1 → atlas-001")  # the plan, awarded
                expect(collaboration).to_contain_text("edison-001 refused on s1")  # Contract Net bids
                expect(collaboration).to_contain_text("atlas-001: approve")  # the ballots
                expect(collaboration).to_contain_text("approve (vote:majority)")  # the outcome
            finally:
                browser.close()
