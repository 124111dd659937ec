"""`stellar-graph run collaboration`: simulated agents show the plan, the bids, the votes and the outcome."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from stellar_graph.cli import main
from stellar_graph.scenarios import load_scenario


def test_run_collaboration_scenario_shows_plan_bids_votes_and_outcome(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    report = tmp_path / "report.json"
    assert (
        main(["run", "collaboration", "--data-dir", str(tmp_path / "d"), "--report", str(report)])
        == 0
    )
    out = capsys.readouterr().out
    assert "SIMULATED agents" in out
    # progress: the second goal waits for the first (max_concurrent_collaborations: 1)
    assert "collab      sensor-safety-case: queued 1 collaboration(s) are active" in out
    assert out.index("ethics-innovation-synthesis: succeeded (vote:majority)") < out.index(
        "sensor-safety-case: planned"
    )
    # the plan, with who did what in which wave
    assert "plan (deterministic, fallback simulated)" in out
    assert (
        "s3   integrator         skills knowledge_synthesis, research_coordin... after s1,s2    -> atlas-001      done wave 2"
        in out
    )
    # the bids: scores, refusals with reasons, awards, a tie between the two Liliths
    assert (
        "round 1 s2   atlas-002 refuses (missing skill(s): risk_analysis) | edison-001 refuses"
        in out
    )
    assert "lilith-001 0.950 AWARDED | lilith-002 0.950 rejected" in out
    assert "round 2 s3" in out and "[not awarded: all_refused]" in out
    # the votes, each with its reason, and the split decided by the rule
    assert "votes (majority, quorum 0.5): approve 2, reject 2 -> no decision (tie)" in out
    assert (
        "lilith-002     reject   [deterministic/simulated] 2/2 success criteria met, 2/3 subtasks done"
        in out
    )
    assert "conflict claim:s2:r1: lilith-001 by rule:load_then_id" in out
    # The split was decided "approve", but the integrator's subtask failed: the goal is not met.
    assert "outcome: failed, decision approve, decided by rule:competence_weighted" in out
    assert "collaborations: 1 failed, 1 succeeded; success rate 0.50; 0 LLM calls" in out
    data = json.loads(report.read_text())
    safety = data["collaborations"]["sensor-safety-case"]
    assert safety["subtasks"]["s3"]["status"] == "failed" and safety["status"] == "failed"
    assert "subtask(s) s3 were not done" in safety["outcome"]["reason"]
    assert data["tasks"] in (None, {})


def test_scenario_collaborations_are_validated(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "collaborations: [{goal: {id: g1, description: x, success_criteria: []}, agent_ids: [a-1]}]"
    )
    assert main(["run", str(path), "--data-dir", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err
    assert "Scenario collaborations[0]" in err and "`goal.success_criteria`=[]" in err
    good = tmp_path / "good.yaml"
    good.write_text(
        "collaborations: [{goal: {id: g1, description: x, success_criteria: [c], deadline: '+2h'}, agent_ids: [a-1]}]"
    )
    now = datetime(2026, 1, 1, tzinfo=UTC)
    (entry,) = load_scenario(str(good), now=now).collaborations
    assert (
        entry["goal"]["deadline"] == "2026-01-01T02:00:00Z"
        and entry["consensus"]["rule"] == "majority"
    )
