"""`stellar-graph run`: bundled scenario end to end, and clear errors with exit code 2."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from stellar_graph.cli import main


def test_run_bundled_scenario_writes_a_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = tmp_path / "report.json"
    code = main(["run", "vegapunk", "--data-dir", str(tmp_path / "d"), "--report", str(report)])
    out = capsys.readouterr().out
    assert code == 0
    assert "SIMULATED agents" in out
    assert "allocated   ethics-framework -> atlas-001" in out  # progress while it runs
    assert "coral-survey" in out and "missing skill(s): marine_biology" in out  # who got what and why
    assert " None" not in out  # every progress line names what it is about (an event without a task once printed None)
    data = json.loads(report.read_text())
    assert data["simulated"] is True
    statuses = {t: r["status"] for t, r in data["tasks"].items()}
    assert statuses["coral-survey"] == "refused"
    assert all(s in {"completed", "failed"} for t, s in statuses.items() if t != "coral-survey")
    # Dependencies ran in order: launch-decision after both of its prerequisites finished.
    tasks = data["tasks"]
    assert tasks["launch-decision"]["started_at"] >= max(tasks[d]["finished_at"] for d in ("risk-review", "demand-forecast"))
    assert data["metrics"]["tasks"]["submitted"] == 11
    assert (tmp_path / "d" / "checkpoints.sqlite").exists()


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("tasks: [{id: t1, description: x, required_skills: [a], priority: urgent}]", "tasks[0]"),
        ("agents: [{agent_id: a-1, agent_type: AtlasAgent}]", "at least one capability"),
        ("config: {task_allocation: {strategy: magic}}", "task_allocation.strategy"),
        ("surprise: 1", "unknown key"),
        ("tasks: [unclosed", "not valid YAML"),
        ("tasks: [{id: t1, description: x, required_skills: [a], deadline: '+99999999999d'}]", "after the year 9999"),
        ("tasks: [{id: t1, description: x, required_skills: [a], resources: {gpu: .nan}}]", "finite"),
    ],
)
def test_bad_scenario_exits_2_with_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, needle: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    assert main(["run", str(path), "--data-dir", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and needle in err


def test_missing_scenario_names_the_bundled_ones(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "no-such-scenario"]) == 2
    assert "vegapunk" in capsys.readouterr().err


@pytest.mark.slow
def test_console_script_entry_point(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "stellar_graph.cli", "run", "vegapunk", "--quiet",
         "--data-dir", str(tmp_path / "d"), "--report", str(tmp_path / "r.json")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "report:" in proc.stdout


async def test_rerunning_a_scenario_whose_run_died_continues_its_thread(tmp_path: Path) -> None:
    """A run that never finished (killed: its marker says so) is continued, not redone: the agents
    and the tasks already on the thread are not submitted again, and the report shows each once."""
    import json as _json

    from stellar_graph import StellarOrchestra
    from stellar_graph.scenarios import load_scenario

    data = tmp_path / "d"
    scenario = load_scenario("vegapunk", now=datetime.now(UTC))
    config = scenario.config.merged({"persistence": {"data_dir": str(data)}})
    async with StellarOrchestra(config, thread_id="vegapunk-killed") as orchestra:  # the dead run's part
        for agent in scenario.agents:
            await orchestra.register_agent(agent)
        await orchestra.orchestrate_multiple_tasks(scenario.tasks[:4])
        await orchestra.wait_idle()
        done_before = orchestra.state()["metrics"]["agent_calls"]
    (data / "runs").mkdir()
    (data / "runs" / "vegapunk.json").write_text(_json.dumps({"thread": "vegapunk-killed", "finished": False}))

    report = tmp_path / "r.json"
    code = await asyncio.to_thread(main, ["run", "vegapunk", "--data-dir", str(data), "--report", str(report), "--quiet"])
    assert code == 0
    body = _json.loads(report.read_text())
    assert body["thread_id"] == "vegapunk-killed"
    assert sorted(body["tasks"]) == sorted(t["id"] for t in scenario.tasks)  # each task, once
    async with StellarOrchestra(config, thread_id="vegapunk-killed") as orchestra:
        metrics = orchestra.state()["metrics"]
    refused = sum(1 for row in body["tasks"].values() if row["status"] == "refused")
    # The first four ran once, before; only the rest ran now.
    assert metrics["tasks_submitted"] == len(scenario.tasks)
    assert metrics["agent_calls"] == done_before + len(scenario.tasks) - 4 - refused
    assert _json.loads((data / "runs" / "vegapunk.json").read_text())["finished"] is True
    # Finished: the next run starts a new thread.
    args = ["run", "vegapunk", "--data-dir", str(data), "--report", str(report), "--quiet"]
    assert await asyncio.to_thread(main, args) == 0
    assert _json.loads(report.read_text())["thread_id"] != "vegapunk-killed"


def test_a_binary_scenario_file_and_a_negative_seed_exit_2_with_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "noise.yaml"
    path.write_bytes(bytes(range(128, 256)))
    assert main(["run", str(path), "--data-dir", str(tmp_path / "d")]) == 2
    assert "not UTF-8 text. Fix" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["run", "vegapunk", "--seed", "-1", "--data-dir", str(tmp_path / "d")])
    assert exited.value.code == 2 and "use a seed >= 0" in capsys.readouterr().err


def test_progress_lines_name_the_agent_and_reason_of_agent_events() -> None:
    from stellar_graph.cli import _progress_line

    line = _progress_line({"type": "agent_failure", "agent_id": "edison-001", "reason": "2 agent errors in a row"})
    assert line.split() == ["failure", "edison-001:", "2", "agent", "errors", "in", "a", "row"]
    assert "None" not in _progress_line({"type": "agent_recovered", "agent_id": "edison-001"})


def test_the_summary_shows_who_tried_a_degraded_task_and_what_went_wrong() -> None:
    from stellar_graph.cli import _summary

    state = {
        "tasks": {"t1": {"id": "t1", "seq": 1, "priority": "high", "status": "degraded", "agent_id": None,
                         "excluded_agents": ["edison-001", "edison-002"], "error": "RuntimeError: agent crashed",
                         "allocation_id": "alloc-t1"}},
        "allocations": {"alloc-t1": {"agent_id": None, "reasons": {"atlas-001": "missing skill(s) engineering"}}},
    }
    row = _summary(state).splitlines()[-1]
    assert "edison-002" in row and "agent crashed" in row and "missing skill" not in row, row
