"""Completion-time intervals through the graph: learned from outcomes kept in the Store."""

from __future__ import annotations

from datetime import timedelta

from stellar_graph import PYTHAGORAS, StellarOrchestra
from stellar_graph.memory import load_predictor
from tests.conftest import FIXED_NOW

MEMORY = {"persistence": {"backend": "memory"}}


def _tasks(prefix: str, n: int, **extra) -> list[dict]:
    return [{"id": f"{prefix}-{i}", "description": "Analyse", "required_skills": ["statistics"],
             "estimated_duration_minutes": 60, **extra} for i in range(n)]


async def test_intervals_start_prior_based_then_become_conformal(fixed_clock) -> None:
    async with StellarOrchestra(MEMORY, clock=fixed_clock) as orchestra:
        await orchestra.register_agent(PYTHAGORAS.default_profile("pythagoras-001", capacity=5, reliability=1.0))
        first = await orchestra.orchestrate_multiple_tasks(_tasks("warmup", 25))
        assert first[0].predicted_interval["method"] == "prior"  # fewer than 19 outcomes so far
        assert first[0].predicted_interval["upper_minutes"] > first[0].predicted_duration_minutes
        await orchestra.wait_idle()

        predictor = await load_predictor(orchestra._store)
        assert predictor.coverage_report()["overall"]["n"] == 25  # the optimizer observed every outcome

        [later] = await orchestra.orchestrate_multiple_tasks(_tasks("later", 1))
        interval = later.predicted_interval
        assert (interval["method"], interval["source"], interval["n_calibration"]) == ("conformal", "agent", 25)
        assert interval["lower_minutes"] < interval["median_minutes"] < interval["upper_minutes"]


async def test_deadline_inside_the_interval_is_likely_late(fixed_clock) -> None:
    async with StellarOrchestra(MEMORY, clock=fixed_clock) as orchestra:
        await orchestra.register_agent(PYTHAGORAS.default_profile("pythagoras-001"))
        # The estimate (60 min) fits the deadline, but the prior's 90% upper bound does not.
        due = (FIXED_NOW + timedelta(minutes=75)).isoformat()
        [allocation] = await orchestra.orchestrate_multiple_tasks(_tasks("tight", 1, deadline=due))
        assert allocation.likely_late is True
        assert allocation.breakdown["deadline"] == 0.0
        roomy = (FIXED_NOW + timedelta(days=2)).isoformat()
        [relaxed] = await orchestra.orchestrate_multiple_tasks(_tasks("roomy", 1, deadline=roomy))
        assert relaxed.likely_late is False and relaxed.breakdown["deadline"] == 1.0
