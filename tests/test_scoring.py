"""Tests for stellar_graph.scoring: vectorised scores equal the per-pair oracle, and decide well."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from stellar_graph.errors import ConfigurationError, DuplicateAgentError, UnknownAgentError
from stellar_graph.models import FACTORS, AgentProfile, Task
from stellar_graph.scoring import (
    AgentPool,
    agent_skill_levels,
    score_matrix,
    score_pair_python,
    score_task,
    validate_weights,
)

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
W = {"skills": 0.4, "resources": 0.1, "workload": 0.2, "deadline": 0.2, "collaboration": 0.1}
SKILLS = [f"s{i}" for i in range(8)]
TYPES = ["Alpha", "Beta", "Gamma"]


def agent(agent_id: str, skills: Any = ("s0",), **kw: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "agent_id": agent_id,
        "agent_type": kw.pop("agent_type", "Alpha"),
        "capabilities": list(skills) if not isinstance(skills, dict) else skills,
        "specializations": kw.pop("specializations", []),
        "capacity": kw.pop("capacity", 3),
        "resources": kw.pop("resources", {}),
        "collaboration_preferences": {
            "preferred_partners": kw.pop("partners", []),
            "avoided_partners": kw.pop("avoided", []),
        },
        "speed": kw.pop("speed", 1.0),
        "reliability": 0.9,
    }
    rec.update(kw)
    return rec


def task(task_id: str = "t1", skills: Any = ("s0",), **kw: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "id": task_id,
        "description": "do it",
        "priority": "medium",
        "deadline": None,
        "required_skills": list(skills),
        "estimated_duration_minutes": 60.0,
        "resources": {},
        "dependencies": [],
        "success_criteria": [],
        "token_budget": None,
        "preferred_agents": [],
        "require_all_skills": False,
    }
    rec.update(kw)
    return rec


def iso(minutes: float) -> str:
    return (NOW + timedelta(minutes=minutes)).isoformat()


def choose(tasks_rec: dict[str, Any], agents: list[dict[str, Any]], **kw: Any) -> str | None:
    scores = score_task(tasks_rec, AgentPool.from_records(agents), weights=W, now=NOW, **kw)
    best = scores.best()
    return None if best is None else scores.agent_ids[best]


# ------------------------------------------------------------------ random pools for the oracle


def random_agent(rng: random.Random, i: int, n: int) -> dict[str, Any]:
    caps: Any = rng.sample(SKILLS, rng.randint(1, 4))
    if rng.random() < 0.6:
        caps = {s: rng.choice([0.25, 0.5, 0.8, 1.0, rng.uniform(0.05, 1)]) for s in caps}
    specs: Any = rng.sample(SKILLS, rng.randint(0, 2))
    if specs and rng.random() < 0.5:
        specs = {s: rng.uniform(0.05, 1) for s in specs}
    capacity = rng.randint(1, 5)
    return agent(
        f"a{i:03d}",
        caps,
        specializations=specs,
        agent_type=rng.choice(TYPES),
        capacity=capacity,
        load=rng.randint(0, capacity),
        healthy=rng.random() > 0.1,
        prompt_tokens=rng.choice([0, 0, 100, 400, 900, 3000]),
        resources={r: float(rng.randint(0, 4)) for r in ("gpu", "ram") if rng.random() < 0.7},
        partners=[f"a{rng.randrange(n):03d}" for _ in range(rng.randint(0, 3))],
        avoided=[f"a{rng.randrange(n):03d}" for _ in range(rng.randint(0, 2))],
        speed=rng.choice([0.5, 1.0, 1.5, 2.0, rng.uniform(0.2, 3)]),
    )


def random_task(rng: random.Random, i: int, n: int) -> dict[str, Any]:
    resources = {r: float(rng.choice([0, 1, 2, 3])) for r in ("gpu", "ram") if rng.random() < 0.5}
    if rng.random() < 0.1:
        resources["quantum"] = 1.0  # nobody has it
    prefs = rng.sample(TYPES, rng.randint(0, 1)) + [f"a{rng.randrange(n):03d}"] * rng.randint(0, 2)
    return task(
        f"t{i:03d}",
        rng.sample([*SKILLS, "unknown_skill"], rng.randint(1, 3)),
        require_all_skills=rng.random() < 0.4,
        resources=resources,
        token_budget=rng.choice([None, None, 500, 1000, 5000]),
        deadline=rng.choice([None, iso(rng.uniform(-300, 400)), iso(rng.uniform(10, 200))]),
        estimated_duration_minutes=rng.choice([15.0, 60.0, rng.uniform(1, 240)]),
        preferred_agents=prefs if rng.random() < 0.3 else [],
    )


def random_case(seed: int, n_agents: int = 25, n_tasks: int = 12) -> tuple[list[Any], list[Any]]:
    rng = random.Random(seed)
    agents = [random_agent(rng, i, n_agents) for i in range(n_agents)]
    return agents, [random_task(rng, i, n_agents) for i in range(n_tasks)]


def test_vectorised_equals_per_pair_python_on_random_pools() -> None:
    pairs = 0
    seen_reasons: set[str] = set()
    interior = np.zeros(5, dtype=bool)  # each factor strictly inside (0, 1) somewhere
    for seed in range(4):
        agents, tasks = random_case(seed)
        pool = AgentPool.from_records(agents)
        rng = random.Random(100 + seed)
        for t in tasks:
            tokens = rng.choice([0, 50, 700])
            related = rng.sample([a["agent_id"] for a in agents], rng.randint(0, 4))
            dfac = np.array([rng.uniform(0.8, 2.0) for _ in agents]) if rng.random() < 0.5 else None
            s = score_task(
                t,
                pool,
                weights=W,
                now=NOW,
                task_tokens=tokens,
                related_agents=related,
                duration_factor=dfac,
            )
            reasons = s.reasons()
            for i, a in enumerate(agents):
                total, factors, reason = score_pair_python(
                    t,
                    a,
                    weights=W,
                    now=NOW,
                    task_tokens=tokens,
                    related_agents=related,
                    duration_factor=1.0 if dfac is None else float(dfac[i]),
                )
                pairs += 1
                assert s.factors[i] == pytest.approx([factors[f] for f in FACTORS], abs=1e-12)
                assert s.breakdown(i) == pytest.approx(factors, abs=1e-12)
                assert bool(s.feasible[i]) is (total is not None)
                if total is None:
                    assert s.total[i] == -np.inf
                    assert reasons[a["agent_id"]] == reason
                    seen_reasons.update(
                        " ".join(part.split(":")[0].split()[:2]) for part in reason.split("; ")
                    )
                else:
                    assert abs(s.total[i] - total) <= 1e-12
                    assert a["agent_id"] not in reasons
                df = 1.0 if dfac is None else dfac[i]
                expect = t["estimated_duration_minutes"] / a["speed"] * df
                assert s.predicted_minutes[i] == pytest.approx(expect, rel=1e-12)
                assert s.estimated_tokens[i] == tokens + a.get("prompt_tokens", 0)
            interior |= ((s.factors > 0) & (s.factors < 1)).any(axis=0)
    assert pairs >= 200
    assert interior.all()
    assert seen_reasons == {
        "missing skill(s)",
        "resource shortfall",
        "token budget",
        "unhealthy",
        "no capacity",
    }


def test_score_matrix_equals_stacked_score_task_totals() -> None:
    agents, tasks = random_case(7, n_agents=30, n_tasks=40)
    pool = AgentPool.from_records(agents)
    tokens = [random.Random(i).choice([0, 300, 2000]) for i in range(len(tasks))]
    stacked = np.vstack(
        [
            score_task(t, pool, weights=W, now=NOW, task_tokens=k).total
            for t, k in zip(tasks, tokens, strict=True)
        ]
    )
    matrix = score_matrix(tasks, pool, weights=W, now=NOW, task_tokens=tokens, chunk=7)
    assert matrix.shape == (40, 30)
    assert np.array_equal(np.isneginf(matrix), np.isneginf(stacked))
    finite = np.isfinite(stacked)
    assert finite.sum() > 50 and (~finite).sum() > 50
    assert np.max(np.abs(matrix[finite] - stacked[finite])) <= 1e-12


def test_score_matrix_validates_arguments_and_handles_empty() -> None:
    pool = AgentPool.from_records([agent("a")])
    with pytest.raises(ConfigurationError, match="task_tokens"):
        score_matrix([task()], pool, weights=W, now=NOW, task_tokens=[1, 2])
    with pytest.raises(ConfigurationError, match="chunk"):
        score_matrix([task()], pool, weights=W, now=NOW, chunk=0)
    assert score_matrix([], pool, weights=W, now=NOW).shape == (0, 1)
    empty = AgentPool.from_records([])
    assert score_matrix([task()], empty, weights=W, now=NOW).shape == (1, 0)
    s = score_task(task(), empty, weights=W, now=NOW)
    assert s.best() is None and s.ranked() == [] and s.reasons() == {}


# ------------------------------------------------------------------ each factor changes the decision


def test_skill_match_comes_first() -> None:
    agents = [
        agent("idle-partial", ["s0"], load=0),
        agent("busy-full", ["s0", "s1"], load=2),
    ]
    assert choose(task(skills=["s0", "s1"]), agents) == "busy-full"
    leveled = [agent("weak", {"s0": 0.3}), agent("strong", {"s0": 0.9})]
    assert choose(task(), leveled) == "strong"


def test_equal_skills_lower_load_wins() -> None:
    agents = [agent("a", load=2, capacity=4), agent("b", load=1, capacity=4)]
    assert choose(task(), agents) == "b"


def test_tight_deadline_picks_the_faster_agent() -> None:
    agents = [agent("a-slow", speed=1.0), agent("b-fast", speed=2.0)]
    assert choose(task(), agents) == "a-slow"  # no deadline: a tie, broken by id
    tight = task(deadline=iso(90), estimated_duration_minutes=60.0)
    s = score_task(tight, AgentPool.from_records(agents), weights=W, now=NOW)
    assert s.agent_ids[s.best()] == "b-fast"
    assert s.factors[:, 3] == pytest.approx([0.5, 1.0])
    late = task(deadline=iso(30), estimated_duration_minutes=60.0)
    s = score_task(late, AgentPool.from_records(agents), weights=W, now=NOW)
    assert s.feasible.all() and s.factors[:, 3].tolist() == [0.0, 0.0]  # late is a score
    assert "likely late: needs 60 min, 30 min left" in s.explain(0, W)


def test_duration_factor_scales_the_prediction() -> None:
    pool = AgentPool.from_records([agent("a"), agent("b")])
    t = task(deadline=iso(120), estimated_duration_minutes=60.0)
    s = score_task(t, pool, weights=W, now=NOW, duration_factor=np.array([1.0, 1.5]))
    assert s.predicted_minutes.tolist() == [60.0, 90.0]
    assert s.factors[:, 3] == pytest.approx([1.0, 120 / 90 - 1])
    assert s.agent_ids[s.best()] == "a"
    with pytest.raises(ConfigurationError, match="duration_factor"):
        score_task(t, pool, weights=W, now=NOW, duration_factor=np.array([1.0]))
    with pytest.raises(ConfigurationError, match="duration_factor"):
        score_task(t, pool, weights=W, now=NOW, duration_factor=np.array([1.0, 0.0]))


def test_resource_shortfall_excludes() -> None:
    agents = [
        agent("a-short", ["s0", "s1"], resources={"gpu": 1.0}),
        agent("b-enough", ["s0"], resources={"gpu": 2.0}, load=2),
    ]
    t = task(skills=["s0", "s1"], resources={"gpu": 2.0, "ram": 0.0})
    s = score_task(t, AgentPool.from_records(agents), weights=W, now=NOW)
    assert s.feasible.tolist() == [False, True]
    assert s.agent_ids[s.best()] == "b-enough"
    assert s.reasons() == {"a-short": "resource shortfall: gpu needs 2, has 1"}
    assert s.factors[1, 1] == pytest.approx(0.5)  # min(1, 2 / (2 * 2))


def test_token_budget_excludes_the_longer_prompt() -> None:
    agents = [agent("a-long", prompt_tokens=700), agent("b-short", prompt_tokens=200, load=1)]
    t = task(token_budget=1000)
    s = score_task(t, AgentPool.from_records(agents), weights=W, now=NOW, task_tokens=312)
    assert s.estimated_tokens.tolist() == [1012, 512]
    assert s.reasons() == {"a-long": "token budget 1000 < estimated 1012 prompt tokens"}
    assert s.agent_ids[s.best()] == "b-short"
    assert s.factors[1, 1] == pytest.approx(min(1.0, 1000 / 1024))


def test_preferred_agents_tip_a_tie_by_id_or_type() -> None:
    agents = [agent("a", agent_type="Alpha"), agent("b", agent_type="Beta")]
    assert choose(task(), agents) == "a"
    assert choose(task(preferred_agents=["b"]), agents) == "b"
    assert choose(task(preferred_agents=["Beta"]), agents) == "b"
    s = score_task(
        task(preferred_agents=["Beta"]), AgentPool.from_records(agents), weights=W, now=NOW
    )
    assert s.factors[:, 4].tolist() == [0.0, 1.0]
    by_type = score_matrix(
        [task(preferred_agents=["Beta"])], AgentPool.from_records(agents), weights=W, now=NOW
    )
    assert by_type[0].tolist() == s.total.tolist()


def test_partner_preferences_tip_a_tie() -> None:
    agents = [
        agent("a", avoided=["helper"]),
        agent("b", partners=["helper"]),
        agent("helper", ["s9"]),
    ]
    assert choose(task(), agents) == "a"
    s = score_task(
        task(), AgentPool.from_records(agents), weights=W, now=NOW, related_agents=["helper", "x"]
    )
    assert s.agent_ids[s.best()] == "b"
    assert s.factors[:, 4].tolist() == [0.25, 0.75, 0.5]
    with pytest.raises(ConfigurationError, match="related_agents"):
        score_task(
            task(), AgentPool.from_records(agents), weights=W, now=NOW, related_agents="helper"
        )
    with pytest.raises(ConfigurationError, match="related_agents"):
        score_pair_python(task(), agents[0], weights=W, now=NOW, related_agents="helper")
    collab = s.explain(1, W).splitlines()[4]
    assert "no preference given; 1 preferred and 0 avoided partner(s) among 2 related" in collab


def test_require_all_skills_versus_any() -> None:
    agents = [agent("a", ["s0"]), agent("b", {"s0": 0.5, "s1": 0.5})]
    any_task = task(skills=["s0", "s1"])
    all_task = task(skills=["s0", "s1"], require_all_skills=True)
    pool = AgentPool.from_records(agents)
    assert score_task(any_task, pool, weights=W, now=NOW).feasible.tolist() == [True, True]
    s = score_task(all_task, pool, weights=W, now=NOW)
    assert s.feasible.tolist() == [False, True]
    assert s.reasons() == {"a": "missing skill(s): s1"}
    assert s.factors[:, 0].tolist() == [0.5, 0.5]


# ------------------------------------------------------------------ reasons, overdue, tie-break


def test_infeasible_reasons_list_every_cause() -> None:
    agents = [
        agent(
            "bad",
            ["s5"],
            resources={"gpu": 1.0},
            healthy=False,
            load=3,
            capacity=3,
            prompt_tokens=900,
        ),
        agent("sick", healthy=False),
        agent("ok", resources={"gpu": 4.0, "ram": 1.5}),
    ]
    t = task(skills=["s0", "s1"], resources={"gpu": 2.0, "ram": 1.5}, token_budget=500)
    s = score_task(t, AgentPool.from_records(agents), weights=W, now=NOW)
    assert s.reasons() == {
        "bad": "missing skill(s): s0, s1; resource shortfall: gpu needs 2, has 1; "
        "resource shortfall: ram needs 1.5, has 0; token budget 500 < estimated 900 prompt "
        "tokens; unhealthy; no capacity (3/3 tasks)",
        "sick": "resource shortfall: gpu needs 2, has 0; resource shortfall: ram needs 1.5, has 0; "
        "unhealthy",
    }
    assert s.agent_ids[s.best()] == "ok"


def test_overdue_deadline_scores_zero_for_all_and_flags() -> None:
    agents = [agent("a", speed=3.0, load=1), agent("b", speed=0.5)]
    s = score_task(task(deadline=iso(-5)), AgentPool.from_records(agents), weights=W, now=NOW)
    assert s.overdue is True
    assert s.factors[:, 3].tolist() == [0.0, 0.0]
    assert s.feasible.all()
    assert s.agent_ids[s.best()] == "b"  # speed no longer matters; lower load does
    assert "overdue by 5 min" in s.explain(0, W)
    on_time = score_task(
        task(deadline=iso(500)), AgentPool.from_records(agents), weights=W, now=NOW
    )
    assert on_time.overdue is False


def test_tie_break_is_deterministic() -> None:
    # equal totals -> lower load/capacity -> smaller id; ordering of records does not matter
    agents = [
        agent("c", load=1, capacity=4),
        agent("b", load=1, capacity=2),
        agent("a", load=2, capacity=8),
    ]
    w = {"skills": 1.0, "resources": 0.0, "workload": 0.0, "deadline": 0.0, "collaboration": 0.0}
    for order in (agents, agents[::-1]):
        s = score_task(task(), AgentPool.from_records(order), weights=w, now=NOW)
        assert [s.agent_ids[i] for i in s.ranked(3)] == ["a", "c", "b"]
        assert s.agent_ids[s.best()] == "a"
    s = score_task(task(), AgentPool.from_records([agent("z"), agent("y")]), weights=W, now=NOW)
    assert s.agent_ids[s.best()] == "y"


def test_near_equal_totals_tie_and_ranked_is_consistent() -> None:
    pool = AgentPool.from_records([agent("b"), agent("a", load=1), agent("c")])
    s = score_task(task(), pool, weights=W, now=NOW)
    s.total[0] += 5e-13  # within TIE_EPS: still a tie, "b" < "c" by id
    assert s.agent_ids[s.best()] == "b"
    s.total[2] += 1e-9  # a real difference wins
    assert s.agent_ids[s.best()] == "c"
    assert [s.agent_ids[i] for i in s.ranked(5)] == ["c", "b", "a"]
    assert s.ranked(1) == [s.best()]
    assert s.ranked(0) == []


def test_nothing_feasible() -> None:
    s = score_task(task(skills=["s7"]), AgentPool.from_records([agent("a")]), weights=W, now=NOW)
    assert s.best() is None and s.ranked() == []
    assert s.reasons() == {"a": "missing skill(s): s7"}


# ------------------------------------------------------------------ explain, weights, pool


def test_explain_has_one_line_per_factor_and_sums_to_total() -> None:
    agents = [agent("a", ["s0", "s1"], load=1, capacity=3)]
    t = task(skills=["s0", "s1"], deadline=iso(180))
    s = score_task(t, AgentPool.from_records(agents), weights=W, now=NOW)
    lines = s.explain(0, W).splitlines()
    assert len(lines) == 6
    assert [ln.split()[0] for ln in lines[:5]] == list(FACTORS)
    assert "2/2 required skills" in lines[0]
    assert "no resource requirements" in lines[1]
    assert "load 1/3" in lines[2]
    assert "finishes 3.0x before the deadline" in lines[3]
    assert "no preference given" in lines[4]
    contributions = sum(float(ln.split("=")[1].split()[0]) for ln in lines[:5])
    assert contributions == pytest.approx(float(s.total[0]), abs=3e-3)
    assert lines[5] == f"total         {float(s.total[0]):.3f}"
    bad = score_task(task(skills=["s9"]), AgentPool.from_records(agents), weights=W, now=NOW)
    assert bad.explain(0, W).splitlines()[-1] == "infeasible: missing skill(s): s9"


@pytest.mark.parametrize(
    ("weights", "match"),
    [
        ({"skills": 1.0}, "missing"),
        ({**W, "skills": 0.3}, "sum to 1"),
        ({**W, "luck": 0.0}, "unknown"),
        ({**W, "skills": 0.6, "resources": -0.1}, ">= 0"),
        ({**W, "skills": "x"}, "numbers"),
    ],
)
def test_weights_are_validated(weights: dict[str, Any], match: str) -> None:
    pool = AgentPool.from_records([agent("a")])
    with pytest.raises(ConfigurationError, match=match) as info:
        score_task(task(), pool, weights=weights, now=NOW)
    assert "weights" in str(info.value) and info.value.field == "weights"
    with pytest.raises(ConfigurationError):
        score_matrix([task()], pool, weights=weights, now=NOW)
    assert validate_weights(W) == (0.4, 0.1, 0.2, 0.2, 0.1)


def test_skill_levels_follow_the_model_rule() -> None:
    profile = AgentProfile(
        agent_id="x-1",
        agent_type="X",
        capabilities={"Data Analysis": 0.4, "writing": 0.9},
        specializations=["data_analysis"],
    )
    record = profile.model_dump(mode="json")
    assert agent_skill_levels(record) == profile.skill_levels()
    pool = AgentPool.from_records([record])
    assert pool.skills[0, pool.skill_index["data_analysis"]] == 1.0
    assert pool.skills[0, pool.skill_index["writing"]] == 0.9


def test_model_dumps_score_like_dicts() -> None:
    profile = AgentProfile(agent_id="atlas-001", agent_type="AtlasAgent", capabilities=["research"])
    t = Task(
        id="t1",
        description="x",
        required_skills=["research"],
        deadline=NOW + timedelta(minutes=90),
        estimated_duration_minutes=60,
    )
    record = t.model_dump(mode="json")
    assert isinstance(record["deadline"], str)
    pool = AgentPool.from_records([profile.model_dump(mode="json")])
    s = score_task(record, pool, weights=W, now=NOW.replace(tzinfo=None))  # naive now = UTC
    assert s.task_id == "t1" and s.best() == 0
    assert s.factors[0].tolist() == pytest.approx([1.0, 1.0, 1.0, 0.5, 0.5])
    with pytest.raises(ConfigurationError, match="deadline"):
        score_task({**record, "deadline": "next tuesday"}, pool, weights=W, now=NOW)


def test_pool_index_with_load_and_duplicates() -> None:
    pool = AgentPool.from_records([agent("a", capacity=4), agent("b")])
    assert len(pool) == 2 and pool.index("b") == 1
    with pytest.raises(UnknownAgentError, match="'zz'"):
        pool.index("zz")
    with pytest.raises(KeyError):
        pool.index("zz")
    busier = pool.with_load(np.array([3, 0]))
    assert pool.load.tolist() == [0, 0] and busier.load.tolist() == [3, 0]
    assert busier.index("b") == 1 and busier.skills is pool.skills
    s = score_task(task(), busier, weights=W, now=NOW)
    assert s.factors[:, 2].tolist() == [0.25, 1.0]
    assert score_task(task(), busier.with_load([4, 0]), weights=W, now=NOW).reasons() == {
        "a": "no capacity (4/4 tasks)"
    }
    with pytest.raises(ConfigurationError, match="load"):
        pool.with_load([1])
    with pytest.raises(ConfigurationError, match="load"):
        pool.with_load([1.5, 0])
    with pytest.raises(ConfigurationError, match="load"):
        pool.with_load([-1, 0])
    with pytest.raises(DuplicateAgentError, match="'a'"):
        AgentPool.from_records([agent("a"), agent("a")])
    with pytest.raises(ConfigurationError, match="agent_id"):
        AgentPool.from_records([{"agent_type": "X"}])


def test_ranked_is_iterated_best_on_near_ties() -> None:
    rng = np.random.default_rng(3)
    levels = [0.5, 0.5 + 5e-13, 0.5 + 1e-12, 0.5 + 1.5e-12, 0.5 + 3e-12, 0.4]
    for _ in range(200):
        n = int(rng.integers(1, 12))
        records = []
        for i in range(n):
            capacity = int(rng.integers(1, 4))
            load = int(rng.integers(0, capacity))
            records.append(agent(f"a{rng.integers(0, 50):02d}-{i}", capacity=capacity, load=load))
        pool = AgentPool.from_records(records)
        s = score_task(task(), pool, weights=W, now=NOW)
        s.feasible[:] = rng.random(n) < 0.8
        s.total[:] = np.where(s.feasible, rng.choice(levels, size=n), -np.inf)
        remaining = np.flatnonzero(s.feasible).tolist()
        expected = []
        while remaining:  # brute force: best() over what is left, again and again
            top = max(s.total[i] for i in remaining)
            ties = [i for i in remaining if s.total[i] >= top - 1e-12]
            pick = min(ties, key=lambda i: (pool.load[i] / pool.capacity[i], pool.ids[i]))
            expected.append(pick)
            remaining.remove(pick)
        assert s.best() == (expected[0] if expected else None)
        for k in range(n + 2):
            assert s.ranked(k) == expected[:k]


def test_pool_rejects_zero_capacity_or_speed() -> None:
    with pytest.raises(ConfigurationError, match="'z'"):
        AgentPool.from_records([agent("a"), agent("z", capacity=0)])
    with pytest.raises(ConfigurationError, match="speed"):
        AgentPool.from_records([agent("a", speed=0.0)])


def test_synthetic_generator_makes_valid_records(monkeypatch: pytest.MonkeyPatch) -> None:
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1] / "tools"))
    from _synthetic import NOW as SYN_NOW
    from _synthetic import make_agents, make_tasks

    agents, tasks = make_agents(60, seed=5), make_tasks(60, seed=6, dependency_rate=0.5)
    assert agents == make_agents(60, seed=5)  # seeded
    extra = ("load", "healthy", "prompt_tokens")
    for a in agents:
        AgentProfile.model_validate({k: v for k, v in a.items() if k not in extra})
    for t in tasks:
        Task.model_validate(t)
    assert any(t["dependencies"] for t in tasks)
    scores = score_matrix(tasks, AgentPool.from_records(agents), weights=W, now=SYN_NOW)
    assert np.isfinite(scores).any() and np.isneginf(scores).any()


def test_score_matrix_honours_duration_factor_like_score_task() -> None:
    from datetime import UTC, datetime, timedelta

    import numpy as np

    from stellar_graph.config import DEFAULT_WEIGHTS
    from stellar_graph.scoring import AgentPool, score_matrix, score_task

    now = datetime(2026, 1, 1, tzinfo=UTC)
    pool = AgentPool.from_records([
        {"agent_id": f"a{i}", "agent_type": "t", "capabilities": ["x"], "speed": 1.0 + i / 3} for i in range(4)
    ])
    tasks = [
        {"id": f"t{j}", "description": "d", "required_skills": ["x"], "estimated_duration_minutes": 30 + 20 * j,
         "deadline": (now + timedelta(minutes=90)).isoformat()}
        for j in range(3)
    ]
    factor = np.array([1.0, 1.5, 2.5, 0.8])
    matrix = score_matrix(tasks, pool, weights=DEFAULT_WEIGHTS, now=now, duration_factor=factor)
    stacked = np.stack([score_task(t, pool, weights=DEFAULT_WEIGHTS, now=now, duration_factor=factor).total for t in tasks])
    assert np.array_equal(matrix, stacked)
    plain = score_matrix(tasks, pool, weights=DEFAULT_WEIGHTS, now=now)
    assert not np.array_equal(matrix, plain)  # the factor changes the deadline scores
