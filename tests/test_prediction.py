from __future__ import annotations

import json
import logging
import math
from statistics import NormalDist

import numpy as np
import pytest

from stellar_graph.errors import ConfigurationError, InvalidInputError
from stellar_graph.prediction import (
    DEFAULT_PRIOR_LOG_MEAN,
    DEFAULT_PRIOR_LOG_SD,
    CompletionPredictor,
    Interval,
    InvalidDurationError,
    min_calibration_size,
)

Z95 = NormalDist().inv_cdf(0.95)


def feed(p: CompletionPredictor, agent: str, log_ratios, est: float = 60.0) -> None:
    for v in log_ratios:
        p.observe(agent, est, est * math.exp(v))


def shuffled(values, seed: int = 0) -> list[float]:
    out = list(values)
    np.random.default_rng(seed).shuffle(out)
    return out


# ------------------------------------------------------------------ prior and source switching


def test_prior_interval_below_19_outcomes_is_flagged_and_exact():
    p = CompletionPredictor()
    feed(p, "a", shuffled(np.linspace(-0.5, 1.0, 18)))
    iv = p.predict("a", 100.0)
    assert (iv.method, iv.source, iv.n_calibration, iv.coverage) == ("prior", "prior", 0, 0.9)
    assert DEFAULT_PRIOR_LOG_MEAN == pytest.approx(math.log(1.16))
    assert iv.median_minutes == pytest.approx(116.0)
    assert iv.upper_minutes == pytest.approx(100 * math.exp(math.log(1.16) + Z95 * 0.5))
    assert iv.lower_minutes == pytest.approx(100 * math.exp(math.log(1.16) - Z95 * 0.5))
    assert p.upper_factor("a") == pytest.approx(1.16 * math.exp(Z95 * DEFAULT_PRIOR_LOG_SD))


def test_custom_prior_is_used():
    p = CompletionPredictor(prior_log_mean=0.0, prior_log_sd=0.2)
    iv = p.predict("x", 10.0)
    assert iv.median_minutes == pytest.approx(10.0)
    assert iv.upper_minutes == pytest.approx(10.0 * math.exp(Z95 * 0.2))


def test_switches_to_conformal_at_19_with_min_and_max_as_bounds():
    values = shuffled([0.05 * k for k in range(-6, 13)])  # 19 distinct log-ratios
    p = CompletionPredictor()
    feed(p, "a", values[:18])
    assert p.predict("a", 60.0).method == "prior"
    feed(p, "a", values[18:])
    iv = p.predict("a", 60.0)
    assert (iv.method, iv.source, iv.n_calibration) == ("conformal", "agent", 19)
    # n = 19: ranks ceil(20 * 0.95) = 19 and floor(20 * 0.05) = 1
    assert iv.upper_minutes == pytest.approx(60 * math.exp(max(values)), rel=1e-12)
    assert iv.lower_minutes == pytest.approx(60 * math.exp(min(values)), rel=1e-12)
    assert iv.median_minutes == pytest.approx(60 * math.exp(sorted(values)[9]), rel=1e-12)


def test_new_agent_falls_back_to_pooled_window():
    p = CompletionPredictor()
    feed(p, "a", shuffled(np.linspace(0, 1, 25)))
    iv = p.predict("newcomer", 30.0)
    assert (iv.method, iv.source, iv.n_calibration) == ("conformal", "pooled", 25)
    feed(p, "b", [0.2] * 5)
    iv = p.predict("b", 30.0)
    assert (iv.source, iv.n_calibration) == ("pooled", 30)
    assert p.predict("a", 30.0).source == "agent"


def test_min_agent_history_is_respected_and_floored_at_n_min():
    p = CompletionPredictor(min_agent_history=40)
    feed(p, "a", shuffled(np.linspace(0, 1, 39)))
    assert p.predict("a", 1.0).source == "pooled"
    feed(p, "a", [0.5])
    assert p.predict("a", 1.0).source == "agent"
    q = CompletionPredictor(min_agent_history=5)  # no finite conformal interval below 19
    feed(q, "a", [0.1] * 10)
    assert q.predict("a", 1.0).method == "prior"


def test_min_calibration_size():
    assert min_calibration_size(0.9) == 19
    assert min_calibration_size(0.95) == 39
    assert min_calibration_size(0.8) == 9
    p = CompletionPredictor(coverage=0.95, window=100)
    feed(p, "a", shuffled(np.linspace(0, 1, 38)))
    assert p.predict("a", 1.0).method == "prior"
    feed(p, "a", [2.0])
    assert p.predict("a", 1.0).upper_minutes == pytest.approx(math.exp(2.0))


# ------------------------------------------------------------------ exact order statistics


@pytest.mark.parametrize(
    ("n", "k_lo", "k_hi"), [(20, 1, 20), (39, 2, 38), (59, 3, 57), (100, 5, 96)]
)
def test_exact_order_statistics(n, k_lo, k_hi):
    values = shuffled([0.01 * k * k - 0.3 for k in range(n)], seed=n)
    p = CompletionPredictor(aci_gamma=0.0)
    feed(p, "a", values, est=45.0)
    s = sorted(values)
    iv = p.predict("a", 45.0)
    assert iv.upper_minutes == pytest.approx(45 * math.exp(s[k_hi - 1]), rel=1e-12)
    assert iv.lower_minutes == pytest.approx(45 * math.exp(s[k_lo - 1]), rel=1e-12)
    med = s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])
    assert iv.median_minutes == pytest.approx(45 * math.exp(med), rel=1e-12)
    assert iv.n_calibration == n


def test_aci_step_per_tail_after_a_late_surprise():
    p = CompletionPredictor(aci_gamma=0.01)
    feed(p, "a", shuffled(np.linspace(-0.5, 0.5, 19)))
    feed(p, "a", [3.0])  # above the max: an upper-tail miss of the 19-point interval
    state = p.to_dict()
    for win in (state["agents"]["a"], state["pooled"]):
        assert win["alpha_upper"] == pytest.approx(0.05 + 0.01 * (0.05 - 1.0))
        assert win["alpha_lower"] == pytest.approx(0.05 + 0.01 * 0.05)
    report = p.coverage_report()
    assert report["by_source"]["agent"]["n"] == 1
    assert report["by_source"]["agent"]["upper_miss"] == 1.0
    assert report["by_source"]["prior"]["n"] == 19


def test_online_coverage_report_matches_a_replay():
    rng = np.random.default_rng(3)
    p = CompletionPredictor()
    expected = {s: [0, 0, 0] for s in ("agent", "pooled", "prior")}
    for t in range(300):
        agent = f"a{t % 7}" if t < 200 else "late"
        est = float(rng.uniform(5, 100))
        act = est * float(np.exp(rng.normal(0.15, 0.5)))
        iv = p.predict(agent, est)
        c = expected[iv.source]
        c[0] += 1
        c[1] += act < iv.lower_minutes
        c[2] += act > iv.upper_minutes
        p.observe(agent, est, act)
    report = p.coverage_report()
    for source, (n, low, high) in expected.items():
        got = report["by_source"][source]
        assert got["n"] == n
        if n:
            assert got["lower_miss"] == pytest.approx(low / n)
            assert got["upper_miss"] == pytest.approx(high / n)
    assert report["overall"]["n"] == 300
    assert report["recent"]["n"] == 200
    assert report["n_agents"] == 8


# ------------------------------------------------------------------ persistence and memory


def test_round_trip_gives_identical_predictions():
    rng = np.random.default_rng(7)
    p = CompletionPredictor(window=50)
    for t in range(400):
        p.observe(f"agent-{t % 4}", 30.0, 30.0 * float(np.exp(rng.normal(0.1, 0.4 + 0.001 * t))))
    feed(p, "rookie", [0.3, 0.4])
    state = json.loads(json.dumps(p.to_dict()))
    q = CompletionPredictor.from_dict(state)
    ids = ["agent-0", "agent-1", "agent-2", "agent-3", "rookie", "unknown"]
    for a in ids:
        assert q.predict(a, 17.5) == p.predict(a, 17.5)
    assert q.coverage_report() == p.coverage_report()
    assert np.array_equal(q.upper_factors(ids), p.upper_factors(ids))
    for t in range(100):  # and they stay identical as new outcomes arrive
        v = 30.0 * float(np.exp(rng.normal(0.5, 0.9)))
        p.observe(ids[t % 5], 30.0, v)
        q.observe(ids[t % 5], 30.0, v)
    assert [q.predict(a, 9.0) for a in ids] == [p.predict(a, 9.0) for a in ids]
    assert q.to_dict() == p.to_dict()


def test_window_bounds_memory_and_forgets_old_outcomes():
    p = CompletionPredictor(window=30, aci_gamma=0.0)
    feed(p, "a", [5.0] * 500)  # an old regime, entirely pushed out below
    values = shuffled(np.linspace(-1, 1, 30), seed=4)
    feed(p, "a", values)
    for t in range(300):
        p.observe(f"b{t % 3}", 10.0, 12.0)
    state = p.to_dict()
    assert len(state["agents"]["a"]["log_ratios"]) == 30
    assert all(len(w["log_ratios"]) <= 30 for w in state["agents"].values())
    assert len(state["pooled"]["log_ratios"]) == 30
    assert len(state["recent"]) == 30
    iv = p.predict("a", 1.0)  # n = 30: ranks 30 and 1, i.e. the window's max and min
    assert iv.upper_minutes == pytest.approx(math.exp(max(values)), rel=1e-12)
    assert iv.lower_minutes == pytest.approx(math.exp(min(values)), rel=1e-12)
    assert len(json.dumps(state)) < 20_000


# ------------------------------------------------------------------ drift


def _drift_coverage(gamma: float, seed: int = 11, jump: int = 2000) -> float:
    rng = np.random.default_rng(seed)
    sigma = np.where(np.arange(jump + 200) < jump, 0.35, 0.8)
    ratios = np.exp(rng.normal(0.15, sigma))
    p = CompletionPredictor(aci_gamma=gamma)
    hits = []
    for t, r in enumerate(ratios):
        iv = p.predict("agent", 50.0)
        if t >= jump:
            hits.append(iv.lower_minutes <= 50.0 * r <= iv.upper_minutes)
        p.observe("agent", 50.0, 50.0 * float(r))
    return float(np.mean(hits))


def test_aci_widens_after_a_variance_jump(caplog):
    with caplog.at_level(logging.WARNING, logger="stellar_graph.prediction"):
        ours = _drift_coverage(0.01)
        static = _drift_coverage(0.0)
    assert ours >= 0.85
    assert static < 0.82 < ours
    assert any("under-cover" in r.getMessage() for r in caplog.records)


def test_recent_coverage_alert_turns_on_and_off():
    p = CompletionPredictor(window=100, aci_gamma=0.0)
    feed(p, "a", [0.0] * 100)  # ties: inside the closed interval every time
    assert p.coverage_report()["recent"]["coverage"] == 1.0
    feed(p, "a", [3.0 + 0.1 * k for k in range(14)])  # each beats the window's max
    report = p.coverage_report()["recent"]
    assert (report["coverage"], report["alert"]) == (pytest.approx(0.86), False)
    feed(p, "a", [5.0 + 0.1 * k for k in range(2)])
    report = p.coverage_report()["recent"]
    assert (report["coverage"], report["alert"]) == (pytest.approx(0.84), True)
    feed(p, "a", [0.0] * 2)  # 86%: still alerting (hysteresis until 87%)
    assert p.coverage_report()["recent"]["alert"] is True
    feed(p, "a", [0.0] * 100)
    assert p.coverage_report()["recent"] == {
        "n": 100,
        "coverage": 1.0,
        "lower_miss": 0.0,
        "upper_miss": 0.0,
        "alert": False,
    }


# ------------------------------------------------------------------ vectorised factors


def test_upper_factors_match_scalar_and_follow_updates():
    rng = np.random.default_rng(5)
    p = CompletionPredictor()
    ids = [f"a{i}" for i in range(12)] + ["a3", "ghost"]
    assert np.allclose(p.upper_factors(ids), p.upper_factor("ghost"))
    for t in range(400):
        agent = f"a{int(rng.integers(0, 6)) if t % 2 else int(rng.integers(0, 12))}"
        p.observe(agent, 20.0, 20.0 * float(np.exp(rng.normal(0.1 * (t % 3), 0.5))))
        if t % 9 == 0:
            got = p.upper_factors(ids)
            assert np.array_equal(got, np.array([p.upper_factor(a) for a in ids]))
    got = p.upper_factors(ids)
    got[:] = -1.0  # callers get a copy, never the cache
    assert np.array_equal(p.upper_factors(ids), np.array([p.upper_factor(a) for a in ids]))
    assert np.array_equal(p.upper_factors(ids[:3]), np.array([p.upper_factor(a) for a in ids[:3]]))


def test_interval_to_dict():
    iv = CompletionPredictor().predict("a", 10.0)
    d = iv.to_dict()
    assert set(d) == {
        "median_minutes",
        "lower_minutes",
        "upper_minutes",
        "coverage",
        "method",
        "n_calibration",
        "source",
    }
    assert Interval(**d) == iv
    json.dumps(d)


# ------------------------------------------------------------------ bad inputs


@pytest.mark.parametrize("bad", [0, -5.0, float("nan"), float("inf"), "10", None, True])
def test_bad_durations_are_rejected_with_the_value_named(bad):
    p = CompletionPredictor()
    with pytest.raises(InvalidDurationError, match="actual_minutes") as exc:
        p.observe("a", 10.0, bad)
    assert repr(bad) in str(exc.value)
    assert isinstance(exc.value, ValueError)
    with pytest.raises(InvalidDurationError, match="estimated_minutes"):
        p.observe("a", bad, 10.0)
    with pytest.raises(InvalidDurationError, match="estimated_minutes"):
        p.predict("a", bad)
    assert p.to_dict()["pooled"]["log_ratios"] == []  # nothing was recorded


@pytest.mark.parametrize("bad_id", ["", None, 3])
def test_bad_agent_ids(bad_id):
    p = CompletionPredictor()
    with pytest.raises(InvalidInputError, match="agent_id"):
        p.observe(bad_id, 1.0, 1.0)
    with pytest.raises(InvalidInputError, match="agent_id"):
        p.upper_factor(bad_id)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"coverage": 1.0}, "coverage"),
        ({"coverage": float("nan")}, "coverage"),
        ({"window": 18}, "window"),
        ({"window": 50.5}, "window"),
        ({"min_agent_history": 300}, "min_agent_history"),
        ({"aci_gamma": -0.1}, "aci_gamma"),
        ({"prior_log_sd": 0.0}, "prior_log_sd"),
        ({"prior_log_mean": float("inf")}, "prior_log_mean"),
    ],
)
def test_bad_configuration(kwargs, field):
    with pytest.raises(ConfigurationError, match=field) as exc:
        CompletionPredictor(**kwargs)
    assert exc.value.field == field


def test_from_dict_rejects_garbage():
    good = CompletionPredictor().to_dict()
    with pytest.raises(ConfigurationError, match="version"):
        CompletionPredictor.from_dict({"version": 99})
    with pytest.raises(ConfigurationError, match="version"):
        CompletionPredictor.from_dict([1, 2])  # type: ignore[arg-type]
    broken = json.loads(json.dumps(good))
    broken["pooled"]["log_ratios"] = ["x"]
    with pytest.raises(ConfigurationError, match="Invalid CompletionPredictor state"):
        CompletionPredictor.from_dict(broken)
    broken = json.loads(json.dumps(good))
    broken["pooled"]["alpha_upper"] = 2.0
    with pytest.raises(ConfigurationError, match="ACI levels"):
        CompletionPredictor.from_dict(broken)


def test_forget_agent_drops_its_window_but_not_the_pool():
    p = CompletionPredictor()
    feed(p, "a", shuffled(np.linspace(0, 1, 30)))
    ids = ["a", "b"]
    before = p.upper_factors(ids)
    assert p.forget_agent("a") is True
    assert p.forget_agent("a") is False
    iv = p.predict("a", 1.0)
    assert (iv.source, iv.n_calibration) == ("pooled", 30)
    assert "a" not in p.to_dict()["agents"]
    assert np.array_equal(p.upper_factors(ids), [p.upper_factor("a"), p.upper_factor("b")])
    assert before.shape == (2,)
