"""Learning from outcomes: posteriors, exploration, replay evaluation, strategy switches."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from stellar_graph.config import DEFAULT_WEIGHTS
from stellar_graph.errors import ConfigurationError, InvalidInputError, OrchestrationError
from stellar_graph.learning import (
    Decision,
    ExplorationPolicy,
    Learner,
    Outcome,
    ProficiencyModel,
    ReplayBuffer,
    StrategyManager,
    evaluate_weights,
    neighbour_weightings,
)
from stellar_graph.models import FACTORS
from stellar_graph.prediction import CompletionPredictor

SKILLS_ONLY = {
    "skills": 1.0,
    "resources": 0.0,
    "workload": 0.0,
    "deadline": 0.0,
    "collaboration": 0.0,
}
WORKLOAD_ONLY = {
    "skills": 0.0,
    "resources": 0.0,
    "workload": 1.0,
    "deadline": 0.0,
    "collaboration": 0.0,
}


def roundtrip(obj):
    return type(obj).from_dict(json.loads(json.dumps(obj.to_dict())))


# ----------------------------------------------------------------------------- ProficiencyModel


def test_posterior_counts_are_exact_without_decay() -> None:
    m = ProficiencyModel(decay=1.0)
    assert m.posterior("ada") == (1.0, 1.0)  # unknown agent: the prior
    m.update("ada", [], 1.0)
    m.update("ada", [], 1.0)
    m.update("ada", [], 0.0)
    m.update("ada", [], 0.7)  # a quality counts fractionally
    assert m.posterior("ada") == pytest.approx((1 + 2.7, 1 + 1.3))
    assert m.mean("ada") == pytest.approx(3.7 / 6.0)


def test_evidence_weight_scales_each_outcome() -> None:
    m = ProficiencyModel(decay=1.0, evidence_weight=2.5)
    m.update("ada", [], 1.0)
    m.update("ada", [], 0.0)
    assert m.posterior("ada") == pytest.approx((1 + 2.5, 1 + 2.5))


def test_skill_posterior_is_shrunk_towards_the_agent_mean() -> None:
    m = ProficiencyModel(decay=1.0, skill_prior_strength=4.0)
    for r in (1.0, 1.0, 1.0, 0.0):
        m.update("ada", ["x"], r)
    # agent: Beta(1 + 3, 1 + 1), mean 2/3; prior strength min(4, 6) = 4
    assert m.posterior("ada", ["x"]) == pytest.approx((4 * 2 / 3 + 3, 4 / 3 + 1))
    # an unseen skill counts zero in the average over the task's skills
    assert m.posterior("ada", ["x", "y"]) == pytest.approx((4 * 2 / 3 + 1.5, 4 / 3 + 0.5))
    assert m.posterior("ada", ["y"]) == pytest.approx((4 * 2 / 3, 4 / 3))
    # a brand-new agent: the skill prior is no stronger than the agent prior Beta(1, 1)
    m.update("bob", ["z"], 1.0)
    assert m.posterior("bob", ["q"]) == pytest.approx((3 * 2 / 3, 3 / 3))


def test_decay_applies_per_update_of_that_agent() -> None:
    m = ProficiencyModel(decay=0.5, decay_period=1)
    m.update("ada", ["x"], 1.0)
    m.update("ada", ["x"], 0.0)
    assert m.posterior("ada") == pytest.approx((1 + 0.5, 1 + 1.0))
    for _ in range(50):  # other agents' updates do not age ada's evidence
        m.update("bob", [], 1.0)
    assert m.posterior("ada") == pytest.approx((1.5, 2.0))
    assert m.posterior("bob")[0] == pytest.approx(1 + sum(0.5**i for i in range(50)))
    assert ProficiencyModel(decay=0.5, decay_period=1).memory == pytest.approx(2.0)


def test_decay_period_sets_the_per_update_discount() -> None:
    m = ProficiencyModel(decay=0.95, decay_period=50)
    assert m.gamma == pytest.approx(0.95 ** (1 / 50))
    assert m.memory == pytest.approx(1 / (1 - 0.95 ** (1 / 50)))
    assert 900 < m.memory < 1000  # ~100x a team of ten (note B7)
    for _ in range(50):
        m.update("ada", [], 1.0)
    m.update("ada", [], 0.0)
    # the first outcome now weighs 0.95 (50 newer outcomes)
    assert m.posterior("ada")[0] - 1 == pytest.approx(sum(m.gamma**i for i in range(1, 51)))
    assert ProficiencyModel(decay=1.0).memory == math.inf


def test_side_statistics_and_bounds() -> None:
    m = ProficiencyModel(decay=1.0, max_agents=2, max_skills_per_agent=2)
    m.update("ada", ["a", "b"], 1.0, tokens=100, estimated_minutes=10, actual_minutes=20)
    m.update("ada", ["c"], 0.0, tokens=300, estimated_minutes=10, actual_minutes=5)
    s = m.summary("ada")
    assert s["mean_tokens"] == pytest.approx(200.0)
    assert s["duration_ratio"] == pytest.approx(1.0)  # geometric mean of 2 and 0.5
    assert set(s["skills"]) == {"b", "c"}  # "a" and "b" tie on recency; the first one goes
    m.update("bob", [], 1.0)
    m.update("cyd", [], 1.0)  # a third agent evicts the least recently updated one (ada)
    assert m.agents == ("bob", "cyd")
    assert m.forget_agent("bob") and not m.forget_agent("bob")
    assert m.summary("nobody")["duration_ratio"] is None


def test_sampling_follows_the_posterior() -> None:
    m = ProficiencyModel(decay=1.0)
    for _ in range(80):
        m.update("ada", [], 1.0)
    for _ in range(20):
        m.update("ada", [], 0.0)
    rng = np.random.default_rng(0)
    draws = [m.sample("ada", [], rng) for _ in range(4000)]
    assert np.mean(draws) == pytest.approx(81 / 102, abs=0.005)


# ----------------------------------------------------------------------------- ExplorationPolicy


def test_epsilon_schedules() -> None:
    ts = ExplorationPolicy("thompson", exploration_rate=0.1)
    assert ts.min_exploration == pytest.approx(0.01)
    assert ts.epsilon(10, 1) == pytest.approx(0.1)
    assert ts.epsilon(10, 1000) == pytest.approx(0.05)
    assert ts.epsilon(10, 100_000) == pytest.approx(0.01)
    ed = ExplorationPolicy("epsilon_decay", exploration_rate=0.1)
    assert ed.epsilon(10, 10) == 1.0
    assert ed.epsilon(10, 500) == pytest.approx(0.1)
    assert ed.epsilon(10, 10**6) == pytest.approx(0.01)
    assert ExplorationPolicy("constant_epsilon", exploration_rate=0.2).epsilon(4, 10**6) == 0.2
    assert ExplorationPolicy("greedy").epsilon(4, 1) == 0.0
    assert ExplorationPolicy(mode="static").epsilon(4, 1) == 0.0
    assert ts.epsilon(1, 1) == 0.0  # a single candidate leaves nothing to explore


@pytest.mark.parametrize("mode", ["static", "dynamic"])
def test_static_and_dynamic_modes_never_explore(mode: str) -> None:
    policy = ExplorationPolicy("constant_epsilon", mode=mode, exploration_rate=1.0)
    model = ProficiencyModel()
    for _ in range(20):
        model.update("a", [], 1.0)  # learning would favour "a"
    rng = np.random.default_rng(0)
    picks = {policy.choose(["a", "b", "c"], [0.1, 0.9, 0.5], model, [], rng) for _ in range(50)}
    assert picks == {(1, 1.0)}


def test_epsilon_greedy_propensity_is_exact() -> None:
    policy = ExplorationPolicy("constant_epsilon", exploration_rate=0.2, success_weight=1.0)
    model = ProficiencyModel(decay=1.0)
    model.update("b", [], 1.0)  # b has the highest posterior mean
    rng = np.random.default_rng(1)
    seen = {}
    for _ in range(400):
        i, p = policy.choose(["a", "b", "c", "d"], [0.0] * 4, model, [], rng)
        seen[i] = p
    assert seen[1] == pytest.approx(0.2 / 4 + 0.8)
    assert [seen[i] for i in (0, 2, 3)] == pytest.approx([0.05] * 3)


def test_thompson_propensity_estimates_the_choice_frequency() -> None:
    policy = ExplorationPolicy("thompson", success_weight=1.0, propensity_samples=200)
    policy.t = 10**6  # exploration at its floor
    model = ProficiencyModel(decay=1.0)
    for agent, wins in (("a", 6), ("b", 5), ("c", 3)):
        for i in range(10):
            model.update(agent, [], 1.0 if i < wins else 0.0)
    rng = np.random.default_rng(2)
    picks, props = [], {0: [], 1: [], 2: []}
    for _ in range(3000):
        i, p = policy.choose(["a", "b", "c"], [0.0] * 3, model, [], rng)
        picks.append(i)
        props[i].append(p)
    for i in range(3):
        freq = picks.count(i) / len(picks)
        assert np.mean(props[i]) == pytest.approx(freq, abs=0.03)
        assert min(props[i]) > 0


def test_thompson_picks_the_best_agent_most_of_the_time() -> None:
    means = [0.2, 0.4, 0.5, 0.6, 0.8]
    ids = [f"a{i}" for i in range(5)]
    learner = Learner.from_config()
    rng = np.random.default_rng(3)
    picks = []
    for _ in range(2000):
        d = learner.decide(ids, [0.5] * 5, ["x"], rng)
        picks.append(d.index)
        learner.learn([Outcome(d.agent_id, bool(rng.random() < means[d.index]), ("x",))])
    assert picks[-500:].count(4) / 500 > 0.9


def test_base_scores_weigh_against_learning() -> None:
    model = ProficiencyModel(decay=1.0)
    for _ in range(30):
        model.update("a", [], 1.0)
        model.update("b", [], 0.0)
    rng = np.random.default_rng(0)
    learn_only = ExplorationPolicy("greedy", success_weight=1.0)
    base_only = ExplorationPolicy("greedy", success_weight=0.0)
    assert learn_only.choose(["a", "b"], [0.1, 0.9], model, [], rng) == (0, 1.0)
    assert base_only.choose(["a", "b"], [0.1, 0.9], model, [], rng) == (1, 1.0)
    blended = ExplorationPolicy("greedy", success_weight=0.5).blended_scores(
        ["a", "b"], [0.1, 0.9], model, [], rng
    )
    assert blended == pytest.approx([0.5 * 0.1 + 0.5 * 31 / 32, 0.5 * 0.9 + 0.5 * 1 / 32])


def _bandit_regret(learner: Learner, means: list[float], horizon: int, seed: int) -> float:
    ids = [f"a{i}" for i in range(len(means))]
    rng = np.random.default_rng(seed)
    regret = 0.0
    for _ in range(horizon):
        d = learner.decide(ids, [0.0] * len(ids), ["x"], rng)
        regret += max(means) - means[d.index]
        learner.learn(
            [Outcome(d.agent_id, bool(rng.random() < means[d.index]), ("x",), decision=d)]
        )
    return regret


def test_adaptive_regret_beats_constant_epsilon_on_a_small_bandit() -> None:
    means = [0.3, 0.45, 0.5, 0.62, 0.7]
    ours = const = 0.0
    for seed in range(3):
        ours += _bandit_regret(Learner.from_config(), means, 2000, seed)
        baseline = Learner.from_config()
        baseline.policy = ExplorationPolicy("constant_epsilon", exploration_rate=0.1)
        const += _bandit_regret(baseline, means, 2000, seed)
    assert ours < 0.8 * const


# ----------------------------------------------------------------------------- replay


def _logged(
    n: int, k: int, seed: int, *, epsilon: float = 1.0
) -> tuple[ReplayBuffer, np.ndarray, np.ndarray]:
    """Decisions logged by an epsilon-greedy-on-workload policy (epsilon=1: uniform)."""
    rng = np.random.default_rng(seed)
    buf = ReplayBuffer(n)
    factors = rng.random((n, k, 5))
    p_success = 0.1 + 0.8 * factors[:, :, 0]  # success depends on the skills factor only
    for i in range(n):
        greedy = int(np.argmax(factors[i, :, 2]))
        chosen = int(rng.integers(k)) if rng.random() < epsilon else greedy
        prop = epsilon / k + (1 - epsilon) * (chosen == greedy)
        buf.add(factors[i], chosen, prop, float(rng.random() < p_success[i, chosen]))
    return buf, factors, p_success


def _truth(factors: np.ndarray, p_success: np.ndarray, weights: dict[str, float]) -> float:
    w = np.array([weights[f] for f in FACTORS])
    pick = np.argmax(factors @ w, axis=1)
    return float(p_success[np.arange(len(pick)), pick].mean())


def test_replay_estimate_is_unbiased_under_uniform_logging() -> None:
    errors = []
    for seed in range(30):
        buf, factors, p = _logged(1000, 4, seed)
        est = evaluate_weights(buf, SKILLS_ONLY)
        errors.append(est.value - _truth(factors, p, SKILLS_ONLY))
        assert 180 < est.matched < 320  # ~1/4 of the decisions match
    assert abs(np.mean(errors)) < 3 * np.std(errors) / math.sqrt(len(errors))
    assert abs(np.mean(errors)) < 0.01


def test_replay_estimate_with_known_non_uniform_propensities() -> None:
    buf, factors, p = _logged(20_000, 3, 7, epsilon=0.3)
    for weights in (SKILLS_ONLY, WORKLOAD_ONLY):
        est = evaluate_weights(buf, weights)
        assert est.value == pytest.approx(
            _truth(factors, p, weights), abs=max(0.02, 3 * est.stderr)
        )
    empty = evaluate_weights(ReplayBuffer(), SKILLS_ONLY)
    assert empty.value is None and empty.matched == 0


def test_replay_buffer_is_a_bounded_ring_with_age_weights() -> None:
    buf = ReplayBuffer(3, decay=0.5)
    for i in range(5):
        buf.add(np.eye(5)[:2], 0, 0.5, i / 10)
    assert len(buf) == 3
    assert [e["reward"] for e in buf.entries()] == [0.2, 0.3, 0.4]
    assert buf.age_weights() == pytest.approx([0.25, 0.5, 1.0])
    # the estimate weighs newer entries more: (0.25*0.2 + 0.5*0.3 + 1*0.4) / 1.75
    assert evaluate_weights(buf, SKILLS_ONLY).value == pytest.approx(0.6 / 1.75)


def test_replay_uses_the_logged_estimates_when_blending() -> None:
    buf = ReplayBuffer()
    factors = [[0.9, 0, 0, 0, 0], [0.2, 0, 0, 0, 0]]
    buf.add(factors, 1, 0.5, 1.0, estimates=[0.1, 0.9])
    buf.add(factors, 0, 0.5, 0.0, estimates=[0.1, 0.9])
    assert evaluate_weights(buf, SKILLS_ONLY).value == 0.0  # picks candidate 0
    assert evaluate_weights(buf, SKILLS_ONLY, success_weight=0.5).value == 1.0  # 0.55 vs 0.45 + ...


# ----------------------------------------------------------------------------- StrategyManager


def _two_way_buffer(n_each: int, reward_current: float, reward_candidate: float) -> ReplayBuffer:
    """Current (workload-only) weights pick candidate 0; skills-only picks candidate 1."""
    buf = ReplayBuffer()
    factors = [[0.1, 0, 0.9, 0, 0], [0.9, 0, 0.1, 0, 0]]
    for _ in range(n_each):
        buf.add(factors, 0, 0.5, reward_current)
        buf.add(factors, 1, 0.5, reward_candidate)
    return buf


def test_switch_below_threshold_is_not_applied() -> None:
    sm = StrategyManager(WORKLOAD_ONLY, adaptation_threshold=0.16)
    [res] = sm.propose([SKILLS_ONLY], _two_way_buffer(40, 0.6, 0.75))
    assert (res["before"], res["after"]) == (pytest.approx(0.6), pytest.approx(0.75))
    assert res["gain"] == pytest.approx(0.15)
    assert not res["applied"] and "below adaptation_threshold" in res["reason"]
    assert sm.current == WORKLOAD_ONLY and sm.previous == []


def test_switch_at_or_above_threshold_is_applied_and_rolled_back() -> None:
    sm = StrategyManager(WORKLOAD_ONLY, adaptation_threshold=0.15)
    [res] = sm.propose([SKILLS_ONLY], _two_way_buffer(40, 0.6, 0.75))
    assert res["applied"] and res["reason"].startswith("applied")
    assert sm.current == SKILLS_ONLY
    assert sm.rollback() == WORKLOAD_ONLY
    assert sm.current == WORKLOAD_ONLY
    with pytest.raises(OrchestrationError, match="Nothing to roll back"):
        sm.rollback()
    assert [h["event"] for h in sm.history] == ["propose", "rollback"]


def test_only_the_best_passing_candidate_is_applied() -> None:
    middle = {
        "skills": 0.6,
        "resources": 0.0,
        "workload": 0.4,
        "deadline": 0.0,
        "collaboration": 0.0,
    }
    # workload-only picks candidate 0, `middle` candidate 1, skills-only candidate 2
    factors = [[0.1, 0, 0.9, 0, 0], [0.5, 0, 0.7, 0, 0], [0.95, 0, 0.0, 0, 0]]
    buf = ReplayBuffer()
    for _ in range(40):
        for chosen, reward in ((0, 0.5), (1, 0.7), (2, 0.9)):
            buf.add(factors, chosen, 1 / 3, reward)
    sm = StrategyManager(WORKLOAD_ONLY, adaptation_threshold=0.1)
    results = sm.propose([WORKLOAD_ONLY, middle, SKILLS_ONLY], buf)
    assert [r["gain"] for r in results] == pytest.approx([0.0, 0.2, 0.4])
    assert [r["applied"] for r in results] == [False, False, True]
    assert results[0]["reason"] == "same as the current weighting"
    assert "another candidate gained more" in results[1]["reason"]
    assert sm.current == SKILLS_ONLY


def test_too_few_matches_block_a_switch() -> None:
    sm = StrategyManager(WORKLOAD_ONLY, adaptation_threshold=0.0, min_effective_n=30)
    [res] = sm.propose([SKILLS_ONLY], _two_way_buffer(10, 0.0, 1.0))
    assert res["gain"] == pytest.approx(1.0) and not res["applied"]
    assert res["effective_n"] == pytest.approx(10.0)
    assert "too little logged support" in res["reason"]


def test_a_noisy_gain_is_not_significant() -> None:
    buf = ReplayBuffer()
    factors = [[0.1, 0, 0.9, 0, 0], [0.9, 0, 0.1, 0, 0]]
    for i in range(40):  # current: 50% success; candidate: 70% success, both with 0/1 noise
        buf.add(factors, 0, 0.5, float(i % 2))
        buf.add(factors, 1, 0.5, float(i % 10 < 7))
    loose = StrategyManager(WORKLOAD_ONLY, adaptation_threshold=0.1, confidence=0.0)
    strict = StrategyManager(WORKLOAD_ONLY, adaptation_threshold=0.1, confidence=3.0)
    [res_loose] = loose.propose([SKILLS_ONLY], buf)
    [res_strict] = strict.propose([SKILLS_ONLY], buf)
    assert res_loose["gain"] == res_strict["gain"] == pytest.approx(0.2)
    # stderr = hypot(sqrt(40 * 0.25) / 40, sqrt(40 * 0.21) / 40)
    assert res_strict["stderr"] == pytest.approx(
        math.hypot(math.sqrt(10) / 40, math.sqrt(8.4) / 40)
    )
    assert res_loose["applied"] and not res_strict["applied"]
    assert "not significant" in res_strict["reason"]


def test_history_and_rollback_stack_are_bounded() -> None:
    sm = StrategyManager(WORKLOAD_ONLY, adaptation_threshold=0.1, max_history=3)
    buf_up, buf_down = _two_way_buffer(40, 0.2, 0.9), _two_way_buffer(40, 0.9, 0.2)
    for i in range(6):  # alternate: each proposal switches
        target = SKILLS_ONLY if i % 2 == 0 else WORKLOAD_ONLY
        [res] = sm.propose([target], buf_up if i % 2 == 0 else buf_down)
        assert res["applied"]
    assert len(sm.history) == 3 and sm.history[-1]["seq"] == 6
    assert len(sm.previous) == 3


def test_a_bad_candidate_changes_nothing() -> None:
    sm = StrategyManager(WORKLOAD_ONLY, adaptation_threshold=0.0)
    with pytest.raises(ConfigurationError, match="sum to 1"):
        sm.propose([SKILLS_ONLY, {**SKILLS_ONLY, "workload": 0.5}], _two_way_buffer(40, 0.0, 1.0))
    assert sm.current == WORKLOAD_ONLY and sm.history == []


def test_neighbour_weightings_shift_mass_towards_each_factor() -> None:
    cands = neighbour_weightings(DEFAULT_WEIGHTS, step=0.5)
    assert len(cands) == 5
    assert cands[0] == pytest.approx(
        {"skills": 0.7, "resources": 0.05, "workload": 0.1, "deadline": 0.1, "collaboration": 0.05}
    )
    assert all(sum(c.values()) == pytest.approx(1.0) for c in cands)
    assert len(neighbour_weightings(SKILLS_ONLY)) == 4  # skills is already at 1
    with pytest.raises(ConfigurationError, match="step"):
        neighbour_weightings(DEFAULT_WEIGHTS, step=0.0)


def test_dry_run_judges_without_switching() -> None:
    sm = StrategyManager(WORKLOAD_ONLY, adaptation_threshold=0.1)
    [res] = sm.propose([SKILLS_ONLY], _two_way_buffer(40, 0.2, 0.9), apply=False)
    assert not res["applied"] and "dry run" in res["reason"]
    assert sm.current == WORKLOAD_ONLY and sm.previous == []
    assert sm.history[-1]["event"] == "evaluate"


# ----------------------------------------------------------------------------- Learner


def test_learner_defaults_follow_the_config_mapping() -> None:
    learner = Learner.from_config(
        {
            "optimization": {"learning_rate": 0.02, "adaptation_threshold": 0.05},
            "learning_parameters": {"experience_replay_buffer_size": 500, "exploration_rate": 0.2},
        }
    )
    assert learner.model.evidence_weight == pytest.approx(2.0)
    assert learner.model.gamma == pytest.approx(0.95 ** (1 / 50))
    assert learner.buffer.capacity == 500
    assert learner.buffer.decay**500 == pytest.approx(0.95**20)
    assert (
        learner.policy.exploration_rate == 0.2
        and learner.policy.min_exploration == pytest.approx(0.02)
    )
    assert learner.strategies.adaptation_threshold == 0.05
    assert learner.weights == DEFAULT_WEIGHTS and learner.mode == "adaptive"


def test_learner_learns_logs_and_calibrates() -> None:
    learner = Learner.from_config()
    rng = np.random.default_rng(0)
    factors = np.full((3, 5), 0.5)
    d = learner.decide(["a", "b", "c"], [0.5, 0.6, 0.4], ["x"], rng, factors=factors)
    assert 0 < d.propensity <= 1 and d.estimates == (0.5, 0.5, 0.5)
    predictor = CompletionPredictor()
    other = "a" if d.agent_id != "a" else "b"
    counts = learner.learn(
        [
            Outcome(
                d.agent_id,
                True,
                ["x"],
                quality=0.8,
                estimated_minutes=10,
                actual_minutes=12,
                tokens=50,
                decision=d,
            ),
            Outcome(
                other, False, ["x"], decision=d
            ),  # reassigned: not the decision's agent, not logged
        ],
        predictor=predictor,
    )
    assert counts == {"outcomes": 2, "learned": 2, "logged": 1, "calibrated": 1}
    assert learner.buffer.entries()[0]["reward"] == 0.8
    assert learner.model.summary(d.agent_id)["duration_ratio"] == pytest.approx(1.2)
    assert learner.model.summary(d.agent_id)["mean_tokens"] == pytest.approx(50)


def test_static_learner_neither_learns_nor_switches() -> None:
    learner = Learner.from_config(
        {"orchestration_mode": "static", "optimization": {"adaptation_threshold": 0.0}}
    )
    learner.buffer = _two_way_buffer(40, 0.0, 1.0)
    learner.strategies = StrategyManager(WORKLOAD_ONLY, adaptation_threshold=0.0)
    counts = learner.learn([Outcome("a", True, ["x"])])
    assert counts["learned"] == 0 and learner.model.agents == ()
    [res] = learner.improve([SKILLS_ONLY])
    assert res["gain"] == pytest.approx(1.0) and not res["applied"] and "static" in res["reason"]
    assert learner.weights == WORKLOAD_ONLY


def test_adaptive_learner_improves_and_rolls_back() -> None:
    learner = Learner.from_config({"optimization": {"adaptation_threshold": 0.2}})
    learner.buffer = _two_way_buffer(40, 0.3, 0.8)
    learner.strategies = StrategyManager(WORKLOAD_ONLY, adaptation_threshold=0.2)
    [res] = learner.improve([SKILLS_ONLY])
    assert res["applied"] and learner.weights == SKILLS_ONLY
    assert learner.rollback() == WORKLOAD_ONLY == learner.weights
    # default candidates: the neighbours of the current weighting
    results = learner.improve(step=1.0)
    assert [r["weights"] for r in results][0] == SKILLS_ONLY
    assert len(results) == 4 and results[0]["applied"]


# ----------------------------------------------------------------------------- persistence


def test_round_trips_preserve_state_and_behaviour() -> None:
    learner = Learner.from_config({"learning_parameters": {"experience_replay_buffer_size": 50}})
    ids = ["a", "b", "c"]
    rng = np.random.default_rng(5)
    for _ in range(80):
        d = learner.decide(ids, [0.3, 0.5, 0.4], ["x", "y"], rng, factors=rng.random((3, 5)))
        learner.learn(
            [Outcome(d.agent_id, bool(rng.random() < 0.6), ["x", "y"], tokens=10, decision=d)]
        )
    learner.strategies.propose([SKILLS_ONLY], learner.buffer)
    copy = roundtrip(learner)
    assert copy.to_dict() == learner.to_dict()
    assert len(copy.buffer) == 50
    for part in (learner.model, learner.policy, learner.buffer, learner.strategies):
        assert roundtrip(part).to_dict() == part.to_dict()
    rng_a, rng_b = np.random.default_rng(9), np.random.default_rng(9)
    for _ in range(20):  # same seed, same state: same decisions
        assert learner.decide(ids, [0.3, 0.5, 0.4], ["x"], rng_a) == copy.decide(
            ids, [0.3, 0.5, 0.4], ["x"], rng_b
        )
    assert evaluate_weights(copy.buffer, DEFAULT_WEIGHTS) == evaluate_weights(
        learner.buffer, DEFAULT_WEIGHTS
    )


def test_outcome_and_decision_round_trip() -> None:
    d = Decision(
        1, 0.25, ("a", "b"), ((0.1, 0.2, 0.3, 0.4, 0.5), (0.5, 0.4, 0.3, 0.2, 0.1)), (0.4, 0.6)
    )
    o = Outcome(
        "b",
        True,
        ["x"],
        quality=0.5,
        estimated_minutes=5,
        actual_minutes=6,
        tokens=7,
        decision=d,
        timestamp="2026-01-01T00:00:00+00:00",
    )
    back = Outcome.from_dict(json.loads(json.dumps(o.to_dict())))
    assert back == o
    assert back.reward == 0.5 and back.propensity == 0.25 and back.factors == d.factors[1]
    assert Outcome("a", False, quality=0.9).reward == 0.0


def test_from_dict_rejects_foreign_or_damaged_state() -> None:
    with pytest.raises(ConfigurationError, match="Not a ProficiencyModel state"):
        ProficiencyModel.from_dict(ReplayBuffer().to_dict())
    state = ProficiencyModel().to_dict()
    state["agents"] = {"a": [1.0, -2.0, 0, 0, {}, 0, 0, 0, 0]}
    with pytest.raises(ConfigurationError, match="Invalid ProficiencyModel state"):
        ProficiencyModel.from_dict(state)
    with pytest.raises(ConfigurationError, match="Not a Learner state"):
        Learner.from_dict({"kind": "Learner", "version": 99})


# ----------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: ProficiencyModel(decay=0.0), "learning_decay_factor"),
        (lambda: ProficiencyModel(decay=1.5), "learning_decay_factor"),
        (lambda: ProficiencyModel(decay_period=0), "decay_period"),
        (lambda: ProficiencyModel(evidence_weight=-1), "evidence_weight"),
        (lambda: ProficiencyModel(prior=(1.0,)), "prior"),
        (lambda: ExplorationPolicy("ucb"), "strategy"),
        (lambda: ExplorationPolicy(mode="turbo"), "orchestration_mode"),
        (lambda: ExplorationPolicy(exploration_rate=2.0), "exploration_rate"),
        (lambda: ExplorationPolicy(exploration_rate=0.1, min_exploration=0.2), "min_exploration"),
        (lambda: ExplorationPolicy(success_weight=float("nan")), "success_weight"),
        (lambda: ReplayBuffer(0), "experience_replay_buffer_size"),
        (lambda: StrategyManager(adaptation_threshold=1.5), "adaptation_threshold"),
        (lambda: StrategyManager({"skills": 1.0}), "weights"),
        (
            lambda: Learner.from_config({"learning_parameters": {"exploration_rate": 2}}),
            "learning_parameters.exploration_rate",
        ),
        (lambda: Learner.from_config(strategy="softmax"), "strategy"),
    ],
)
def test_bad_config_values_are_rejected_clearly(build, field: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        build()
    assert info.value.field == field
    assert (
        field.rsplit(".", 1)[-1] in str(info.value)
        and "Fix" in str(info.value)
        or field == "weights"
    )


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: Outcome("", True), "agent_id"),
        (lambda: Outcome("a", "yes"), "success"),  # type: ignore[arg-type]
        (lambda: Outcome("a", True, quality=1.5), "quality"),
        (lambda: Outcome("a", True, "math"), "skills"),  # type: ignore[arg-type]
        (lambda: Outcome("a", True, tokens=-3), "tokens"),
        (lambda: ReplayBuffer().add(np.ones((2, 4)), 0, 0.5, 1.0), "factors"),
        (lambda: ReplayBuffer().add(np.ones((2, 5)), 2, 0.5, 1.0), "chosen"),
        (lambda: ReplayBuffer().add(np.ones((2, 5)), 0, 0.0, 1.0), "propensity"),
        (lambda: ProficiencyModel().update("a", [], 1.2), "reward"),
    ],
)
def test_bad_inputs_are_rejected_clearly(build, match: str) -> None:
    with pytest.raises(InvalidInputError, match=match):
        build()


def test_choose_from_posteriors_rejects_bad_parameters() -> None:
    with pytest.raises(ConfigurationError, match="Beta parameters"):
        ExplorationPolicy().choose_from_posteriors(
            [0.1, 0.2], [1.0, 0.0], [1.0, 1.0], np.random.default_rng(0)
        )


def test_choose_rejects_mismatched_scores() -> None:
    with pytest.raises(ConfigurationError, match="one finite score per candidate"):
        ExplorationPolicy().choose(
            ["a", "b"], [0.1], ProficiencyModel(), [], np.random.default_rng(0)
        )
    with pytest.raises(ConfigurationError, match="one finite score per candidate"):
        ExplorationPolicy().choose([], [], ProficiencyModel(), [], np.random.default_rng(0))


@pytest.mark.slow
def test_bench_script_runs_end_to_end() -> None:
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run(
        [
            sys.executable,
            str(root / "tools" / "bench_learning.py"),
            "--quick",
            "--runs",
            "2",
            "--horizon",
            "400",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode in (0, 1), proc.stderr  # 1: a target missed at this tiny horizon
    assert "ours: adaptive (thompson, seed defaults)" in proc.stdout
    assert proc.stdout.count("T15 ") == 3
