"""Tests for stellar_graph.allocation: exactness, the product rule, ties, repair, rebalance, errors."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.optimize import linear_sum_assignment

from stellar_graph.allocation import STRATEGIES, Strategy, assign, rebalance, repair
from stellar_graph.errors import ConfigurationError

NEG = -np.inf

# --- independent references -------------------------------------------------------------------


def lsa_reference(scores: np.ndarray, caps: np.ndarray) -> tuple[int, float]:
    """(max count, max total at that count) via scipy LSA on replicated columns.

    Every feasible pair gets a bonus larger than any possible total-score difference, so LSA
    maximises the number of assigned tasks first, exactly like the product rule.
    """
    cols = np.repeat(np.arange(scores.shape[1]), caps)
    if cols.size == 0 or scores.shape[0] == 0:
        return 0, 0.0
    wide = scores[:, cols]
    feasible = np.isfinite(wide)
    if not feasible.any():
        return 0, 0.0
    lo, hi = wide[feasible].min(), wide[feasible].max()
    bonus = (hi - lo + 1.0) * (scores.shape[0] + 1)
    profit = np.where(feasible, wide - lo + bonus, 0.0)
    rows, picked = linear_sum_assignment(profit, maximize=True)
    keep = feasible[rows, picked]
    return int(keep.sum()), float(wide[rows[keep], picked[keep]].sum())


def brute_force(scores: np.ndarray, caps: np.ndarray) -> tuple[int, float]:
    """(max count, max total at that count) by enumerating every assignment."""
    n_tasks, n_agents = scores.shape
    if n_tasks == 0:
        return 0, 0.0
    combos = np.array(list(itertools.product(range(-1, n_agents), repeat=n_tasks)))
    picked = np.where(combos >= 0, scores[np.arange(n_tasks), np.maximum(combos, 0)], 0.0)
    loads = (combos[:, :, None] == np.arange(n_agents)).sum(axis=1)
    ok = np.isfinite(picked).all(axis=1) & (loads <= caps).all(axis=1)
    counts = (combos >= 0).sum(axis=1)
    best = counts[ok].max()
    return int(best), float(picked[ok & (counts == best)].sum(axis=1).max())


def total(scores: np.ndarray, assignment: np.ndarray) -> float:
    rows = np.flatnonzero(assignment >= 0)
    return float(scores[rows, assignment[rows]].sum())


def check_valid(scores: np.ndarray, caps: np.ndarray, assignment: np.ndarray) -> None:
    """Feasible pairs, capacities kept, and the product rule: no unassigned task while one of
    its feasible agents has a free slot."""
    assert assignment.shape == (scores.shape[0],)
    assert assignment.dtype == np.int64
    rows = np.flatnonzero(assignment >= 0)
    assert np.isfinite(scores[rows, assignment[rows]]).all()
    free = caps - np.bincount(assignment[rows], minlength=len(caps))
    assert (free >= 0).all()
    left = np.flatnonzero(assignment < 0)
    assert not (np.isfinite(scores[left]) & (free > 0)).any()


def check_tie_rule(scores: np.ndarray, caps: np.ndarray, assignment: np.ndarray) -> None:
    """No task sits on agent j while a lower agent with exactly its score has a free slot."""
    rows = np.flatnonzero(assignment >= 0)
    free = caps - np.bincount(assignment[rows], minlength=len(caps))
    for t in rows:
        j = assignment[t]
        lower = np.flatnonzero(scores[t, :j] == scores[t, j])
        assert not (free[lower] > 0).any(), (t, j)


# --- score generators (section B0 of the baselines note, compact) ------------------------------


def uniform(n_tasks: int, n_agents: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((n_tasks, n_agents))


def clustered(n_tasks: int, n_agents: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    tc, ac = rng.integers(0, 20, n_tasks), rng.integers(0, 20, n_agents)
    base = np.where(tc[:, None] == ac[None, :], 0.8, 0.2) + rng.uniform(0, 0.15, n_agents)
    return np.clip(base + rng.normal(0, 0.05, (n_tasks, n_agents)), 0.0, 1.0)


def five_factor(n_tasks: int, n_agents: int, seed: int) -> np.ndarray:
    """Skill fit, per-agent resources/workload/speed (contention), deadline, collaboration."""
    rng = np.random.default_rng(seed)
    levels = rng.uniform(0.3, 1.0, (n_agents, 32)) * (rng.random((n_agents, 32)) < 0.125)
    need = rng.integers(0, 32, (n_tasks, 2))
    req = rng.uniform(0.3, 0.9, (n_tasks, 2))
    skill = np.mean([np.minimum(levels[:, need[:, k]].T / req[:, k, None], 1) for k in (0, 1)], 0)
    resource = np.minimum(rng.uniform(0.2, 1, n_agents) / rng.uniform(0.05, 0.5, (n_tasks, 1)), 1)
    workload = 1 - rng.uniform(0, 0.9, n_agents)
    slack = rng.uniform(2, 20, (n_tasks, 1))
    late = slack - rng.uniform(1, 10, (n_tasks, 1)) / rng.uniform(0.5, 2, n_agents)
    deadline = 1 / (1 + np.exp(-late / (0.25 * slack)))
    collab = (rng.random((n_tasks, n_agents)) < 0.05).astype(float)
    out: np.ndarray = (
        0.35 * skill + 0.2 * resource + 0.15 * workload + 0.2 * deadline + 0.1 * collab
    )
    return out


GENERATORS = {"uniform": uniform, "clustered": clustered, "five_factor": five_factor}


# --- "optimal" against scipy LSA on replicated columns ------------------------------------------


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_optimal_matches_replicated_lsa_1000x100(name: str) -> None:
    scores = GENERATORS[name](1000, 100, seed=7)
    caps = np.full(100, 10)
    out = assign(scores, caps, strategy="optimal")
    check_valid(scores, caps, out)
    count, best = lsa_reference(scores, caps)
    assert (out >= 0).sum() == count == 1000
    assert abs(total(scores, out) - best) <= 1e-6 * abs(best)


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_optimal_matches_lsa_with_mask_and_short_capacity(name: str) -> None:
    rng = np.random.default_rng(3)
    scores = GENERATORS[name](400, 60, seed=11)
    mask = rng.random(scores.shape) < 0.08  # sparse feasibility: the count rule matters
    caps = rng.integers(0, 8, 60)
    out = assign(scores, caps, strategy="optimal", mask=mask)
    masked = np.where(mask, scores, NEG)
    check_valid(masked, caps, out)
    count, best = lsa_reference(masked, caps)
    assert (out >= 0).sum() == count
    assert 0 < count < 400
    assert abs(total(masked, out) - best) <= 1e-6 * abs(best)


def test_auto_is_exact_below_threshold_and_fast_is_close() -> None:
    scores = five_factor(1000, 100, seed=5)
    caps = np.full(100, 10)
    _, best = lsa_reference(scores, caps)
    assert abs(total(scores, assign(scores, caps)) - best) <= 1e-6 * best
    fast = assign(scores, caps, strategy="fast", top_k=20)
    check_valid(scores, caps, fast)
    assert total(scores, fast) >= 0.995 * best


def test_auto_threshold_counts_feasible_pairs(monkeypatch: pytest.MonkeyPatch) -> None:
    import stellar_graph._assign_flow as flow_mod
    import stellar_graph.allocation as alloc_mod

    used: list[str] = []

    def spy(name: str) -> object:
        def fake(scores: np.ndarray, *_: object) -> np.ndarray:
            used.append(name)
            return np.full(len(scores), -1, dtype=np.int64)

        return fake

    monkeypatch.setattr(flow_mod, "solve_dense", spy("solve_dense"))
    monkeypatch.setattr(flow_mod, "solve_fast", spy("solve_fast"))
    monkeypatch.setattr(alloc_mod, "AUTO_OPTIMAL_MAX_PAIRS", 100)
    scores = uniform(20, 10, seed=0)  # 200 cells > 100
    assign(scores, np.full(10, 2))
    mask = np.zeros((20, 10), dtype=bool)
    mask[:, :4] = True  # 80 feasible pairs <= 100
    assign(scores, np.full(10, 2), mask=mask)
    assign(scores[:10], np.full(10, 2))  # 100 cells
    assert used == ["solve_fast", "solve_dense", "solve_dense"]


# --- small instances against brute force --------------------------------------------------------

small_cell = st.one_of(
    st.sampled_from([NEG, 0.0, 0.25, 0.5, 1.0]),  # repeated values exercise the tie rule
    st.floats(-1.0, 1.0, allow_nan=False),
)


@st.composite
def small_instances(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    n_tasks = draw(st.integers(0, 6))
    n_agents = draw(st.integers(1, 4))
    cells = draw(st.lists(small_cell, min_size=n_tasks * n_agents, max_size=n_tasks * n_agents))
    caps = draw(st.lists(st.integers(0, 3), min_size=n_agents, max_size=n_agents))
    return np.array(cells, dtype=float).reshape(n_tasks, n_agents), np.array(caps)


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(small_instances(), st.integers(1, 3))
def test_small_instances_against_brute_force(inst: tuple[np.ndarray, np.ndarray], k: int) -> None:
    scores, caps = inst
    count, best = brute_force(scores, caps)
    pair: tuple[Strategy, ...] = ("optimal", "fast")
    for strategy in pair:
        out = assign(scores, caps, strategy=strategy, top_k=k)
        check_valid(scores, caps, out)
        check_tie_rule(scores, caps, out)
        # fast keeps the maximum count too (overflow pass + augmenting paths)
        assert (out >= 0).sum() == count
        if strategy == "optimal":
            assert total(scores, out) == pytest.approx(best, abs=1e-6)
        assert np.array_equal(out, assign(scores, caps, strategy=strategy, top_k=k))
    greedy = assign(scores, caps, strategy="greedy")
    check_valid(scores, caps, greedy)
    check_tie_rule(scores, caps, greedy)


def test_lexicographic_count_beats_score() -> None:
    # Task 0 alone on agent 0 scores 1.0; placing both tasks scores only 0.6 but serves both.
    scores = np.array([[1.0, 0.1], [0.5, NEG]])
    caps = np.array([1, 1])
    assert assign(scores, caps, strategy="optimal").tolist() == [1, 0]
    # fast with one candidate per task needs the augmenting path to get there
    assert assign(scores, caps, strategy="fast", top_k=1).tolist() == [1, 0]
    # greedy is online: task 0 takes agent 0 and task 1 has no feasible free slot left
    assert assign(scores, caps, strategy="greedy").tolist() == [0, -1]


def test_greedy_follows_priorities_and_can_be_far_from_optimal() -> None:
    scores = np.array([[1.01, 1.0], [10.0, 0.0]])  # section A1's example: no constant factor
    caps = np.array([1, 1])
    assert assign(scores, caps, strategy="greedy").tolist() == [0, 1]
    assert assign(scores, caps, strategy="greedy", priorities=np.array([0.0, 1.0])).tolist() == [
        1,
        0,
    ]
    assert assign(scores, caps, strategy="optimal").tolist() == [1, 0]
    # equal priorities fall back to task index order
    assert assign(scores, caps, strategy="greedy", priorities=np.ones(2)).tolist() == [0, 1]


@pytest.mark.parametrize("strategy", ["optimal", "fast", "greedy"])
def test_product_rule_on_masked_medium_instance(strategy: Strategy) -> None:
    rng = np.random.default_rng(21)
    scores = np.where(rng.random((300, 40)) < 0.15, rng.random((300, 40)), NEG)
    caps = rng.integers(0, 6, 40)
    out = assign(scores, caps, strategy=strategy, top_k=1)
    check_valid(scores, caps, out)
    check_tie_rule(scores, caps, out)
    if strategy != "greedy":
        assert (out >= 0).sum() == lsa_reference(scores, caps)[0]


# --- ties and determinism -----------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["optimal", "fast", "greedy", "auto"])
def test_equal_scores_fill_lower_agents_first(strategy: Strategy) -> None:
    scores = np.full((5, 3), 0.5)
    out = assign(scores, np.array([2, 2, 2]), strategy=strategy, top_k=1)
    assert np.bincount(out, minlength=3).tolist() == [2, 2, 1]
    assert np.array_equal(out, assign(scores, np.array([2, 2, 2]), strategy=strategy, top_k=1))


@pytest.mark.parametrize("strategy", ["optimal", "fast", "greedy"])
def test_tie_between_two_agents_goes_to_lower_index(strategy: Strategy) -> None:
    scores = np.array([[0.3, 0.9, 0.9, 0.1]])
    assert assign(scores, np.array([1, 1, 1, 1]), strategy=strategy, top_k=2).tolist() == [1]
    assert assign(scores, np.array([1, 0, 1, 1]), strategy=strategy, top_k=2).tolist() == [2]


def test_strategies_are_deterministic_on_clustered_ties() -> None:
    scores = np.round(clustered(300, 30, seed=2), 1)  # heavy ties
    caps = np.full(30, 10)
    trio: tuple[Strategy, ...] = ("optimal", "fast", "greedy")
    for strategy in trio:
        first = assign(scores, caps, strategy=strategy, top_k=5)
        check_tie_rule(scores, caps, first)
        assert np.array_equal(first, assign(scores.copy(), caps.copy(), strategy=strategy, top_k=5))


def test_inputs_are_not_modified_and_edges() -> None:
    scores = uniform(20, 4, seed=1)
    scores[0, 0] = NEG
    before = scores.copy()
    caps = np.array([5, 5, 5, 5])
    mask = np.ones((20, 4), dtype=bool)
    mask[1] = False
    out = assign(scores, caps, strategy="fast", top_k=2, mask=mask)
    assert np.array_equal(scores, before)
    assert out[1] == -1
    assert out[0] != 0
    assert assign(np.zeros((0, 3)), np.array([1, 1, 1])).shape == (0,)
    assert assign(np.zeros((4, 0)), np.zeros(0, dtype=int)).tolist() == [-1] * 4
    assert assign(scores, np.zeros(4, dtype=int), strategy="greedy").tolist() == [-1] * 20
    assert assign([[1.0, 2.0]], [1.0, 1.0]).tolist() == [1]  # lists and whole floats are fine


# --- repair -------------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None, derandomize=True, database=None)
@given(small_instances(), st.data())
def test_repair_keeps_unaffected_and_is_optimal_over_displaced(
    inst: tuple[np.ndarray, np.ndarray], data: st.DataObject
) -> None:
    scores, caps = inst
    start = assign(scores, caps, strategy="optimal")
    failed = data.draw(st.lists(st.integers(0, len(caps) - 1), max_size=2))
    out = repair(start, scores, caps, failed)
    affected = np.isin(start, failed)
    assert np.array_equal(out[~affected], start[~affected])
    assert not np.isin(out, failed).any()
    shrunk = caps.copy()
    shrunk[failed] = 0
    check_valid(scores, shrunk, out)  # incl. the product rule for every task
    free = shrunk - np.bincount(start[~affected & (start >= 0)], minlength=len(caps))
    count, best = brute_force(scores[affected], free)
    assert (out[affected] >= 0).sum() == count
    assert total(scores[affected], out[affected]) == pytest.approx(best, abs=1e-6)


def test_repair_medium_close_to_full_resolve_and_moves_nobody_else() -> None:
    scores = five_factor(2000, 200, seed=4)
    caps = np.full(200, 12)
    start = assign(scores, caps, strategy="optimal")
    load = np.bincount(start, minlength=200)
    failed = [int(j) for j in np.argsort(-load, kind="stable")[:1]]
    out = repair(start, scores, caps, failed)
    unaffected = ~np.isin(start, failed)
    assert np.array_equal(out[unaffected], start[unaffected])
    assert (out >= 0).all() and not np.isin(out, failed).any()
    shrunk = caps.copy()
    shrunk[failed] = 0
    full = assign(scores, shrunk, strategy="optimal")
    assert total(scores, full) >= total(scores, out) >= (1 - 1e-3) * total(scores, full)
    assert (full[unaffected] != start[unaffected]).sum() > 0  # a full re-solve churns
    assert np.array_equal(repair(start, scores, caps, []), start)


def test_repair_leaves_displaced_unassigned_without_room() -> None:
    scores = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.6]])
    start = np.array([0, 0, 1])
    out = repair(start, scores, np.array([2, 2]), [0])
    # one free slot on agent 1: task 0 gains the least by staying out (0.1 < 0.2)
    assert out.tolist() == [-1, 1, 1]
    assert start.tolist() == [0, 0, 1]


# --- rebalance ----------------------------------------------------------------------------------


def _three_agent_case() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Agent 0: 10/10 (source), agent 1: 6/10 (in the band), agent 2: 1/10 (target)."""
    assignment = np.array([0] * 10 + [1] * 6 + [2])
    scores = np.full((17, 3), 0.5)
    scores[:10, 2] = 0.7  # +0.2 for every task of agent 0 on agent 2
    scores[:10, 1] = 0.9  # bigger gain on agent 1, but agent 1 is not a target
    return assignment, scores, np.array([10, 10, 10])


def test_rebalance_moves_until_source_is_below_high() -> None:
    assignment, scores, caps = _three_agent_case()
    movable = np.ones(17, dtype=bool)
    moves = rebalance(assignment, scores, caps, movable=movable, migration_cost=0.1)
    assert moves == [(0, 0, 2), (1, 0, 2)]  # 10 -> 8 tasks: 0.8 <= high=0.85
    applied = assignment.copy()
    for t, _, to in moves:
        applied[t] = to
    assert rebalance(applied, scores, caps, movable=movable, migration_cost=0.1) == []


def test_rebalance_migration_cost_movable_and_max_moves() -> None:
    assignment, scores, caps = _three_agent_case()
    movable = np.ones(17, dtype=bool)
    assert rebalance(assignment, scores, caps, movable=movable, migration_cost=0.25) == []
    movable[0] = False
    assert rebalance(assignment, scores, caps, movable=movable, migration_cost=0.1) == [
        (1, 0, 2),
        (2, 0, 2),
    ]
    assert rebalance(
        assignment, scores, caps, movable=movable, migration_cost=0.1, max_moves=1
    ) == [(1, 0, 2)]


def test_rebalance_never_turns_a_target_into_a_source_or_back() -> None:
    scores = np.array([[0.1, 0.9]] * 10)
    movable = np.ones(10, dtype=bool)
    # the small target (capacity 2) may take 1 task (0.5); a 2nd would put it at 1.0 > high
    moves = rebalance(
        np.zeros(10, dtype=np.int64), scores, np.array([10, 2]), movable=movable, migration_cost=0.0
    )
    assert moves == [(0, 0, 1)]
    # a single-slot source would drop to 0.0 < low and become a target itself: no move
    assert (
        rebalance(
            np.array([0, -1]),
            scores[:2],
            np.array([1, 10]),
            movable=movable[:2],
            migration_cost=0.0,
        )
        == []
    )


def test_rebalance_balanced_or_in_band_does_nothing() -> None:
    assignment = np.array([0] * 6 + [1] * 7)
    scores = np.random.default_rng(0).random((13, 2))
    caps = np.array([10, 10])
    movable = np.ones(13, dtype=bool)
    assert rebalance(assignment, scores, caps, movable=movable, migration_cost=0.0) == []


def test_rebalance_balance_weight_moves_equal_scores() -> None:
    assignment = np.array([0] * 10 + [1])
    scores = np.full((11, 2), 0.5)
    caps = np.array([10, 10])
    movable = np.ones(11, dtype=bool)
    assert rebalance(assignment, scores, caps, movable=movable, migration_cost=0.0) == []
    moves = rebalance(
        assignment, scores, caps, movable=movable, migration_cost=0.5, balance_weight=1.0
    )  # gap 1.0 - 0.1 = 0.9 > 0.5
    assert moves == [(0, 0, 1), (1, 0, 1)]


def test_rebalance_random_invariants_and_idempotence() -> None:
    rng = np.random.default_rng(9)
    for seed in range(5):
        scores = clustered(400, 40, seed=seed)
        caps = rng.integers(1, 20, 40)
        start = assign(scores, caps, strategy="greedy", priorities=rng.random(400))
        movable = rng.random(400) < 0.7
        counts = np.bincount(start[start >= 0], minlength=40)
        util = counts / caps
        moves = rebalance(start, scores, caps, movable=movable, migration_cost=0.05, low=0.4)
        applied = start.copy()
        for t, frm, to in moves:
            assert movable[t] and applied[t] == frm
            assert util[frm] > 0.85 and util[to] < 0.4
            assert scores[t, to] - scores[t, frm] > 0.05
            applied[t] = to
        new = np.bincount(applied[applied >= 0], minlength=40) / caps
        touched = [m[1] for m in moves] + [m[2] for m in moves]
        assert all(0.4 <= new[j] for j in {m[1] for m in moves})
        assert all(new[j] <= 0.85 for j in touched)
        assert rebalance(applied, scores, caps, movable=movable, migration_cost=0.05, low=0.4) == []


def test_rebalance_failed_agent_with_no_capacity_is_a_source() -> None:
    assignment = np.array([0, 0, 1])
    scores = np.array([[0.5, 0.6, 0.7], [0.5, 0.2, 0.9], [0.5, 0.5, 0.5]])
    moves = rebalance(
        assignment, scores, np.array([0, 3, 3]), movable=np.ones(3, dtype=bool), migration_cost=0.0
    )
    assert moves == [(1, 0, 2), (0, 0, 2)]


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"capacities": np.array([1, 1, 1])}, "capacities must have shape (2,)"),
        ({"capacities": np.array([1, -1])}, "capacities[1] is -1"),
        ({"capacities": np.array([1.5, 1.0])}, "whole numbers"),
        ({"scores": np.array([[0.1, np.nan], [0.2, 0.3]])}, "scores[0, 1] is NaN"),
        ({"scores": np.array([[0.1, 0.2], [np.inf, 0.3]])}, "scores[1, 0] is +inf"),
        ({"scores": np.array([0.1, 0.2])}, "must be 2-D"),
        ({"strategy": "best"}, "['auto', 'optimal', 'fast', 'greedy']"),
        ({"top_k": 0}, "top_k must be an integer >= 1"),
        ({"mask": np.ones((2, 3), dtype=bool)}, "mask must be a bool array of shape (2, 2)"),
        ({"priorities": np.array([1.0])}, "priorities must be 2 finite numbers"),
    ],
)
def test_assign_errors(kwargs: dict[str, object], fragment: str) -> None:
    args: dict[str, object] = {"scores": np.ones((2, 2)), "capacities": np.array([1, 1])}
    args.update(kwargs)
    with pytest.raises(ConfigurationError) as info:
        assign(args.pop("scores"), args.pop("capacities"), **args)  # type: ignore[arg-type]
    assert fragment in str(info.value)
    assert isinstance(info.value, ValueError)


def test_strategies_constant_lists_every_literal() -> None:
    assert STRATEGIES == ("auto", "optimal", "fast", "greedy")


def test_repair_and_rebalance_errors() -> None:
    scores, caps = np.ones((3, 2)), np.array([1, 1])
    with pytest.raises(ConfigurationError, match="failed agent index 5"):
        repair(np.array([0, 1, -1]), scores, caps, [5])
    with pytest.raises(ConfigurationError, match="puts 2 tasks on agent 1 whose capacity is 1"):
        repair(np.array([0, 1, 1]), scores, caps, [0])
    with pytest.raises(ConfigurationError, match="agent index 2"):
        repair(np.array([0, 2, -1]), scores, caps, [0])
    bad_nan = scores.copy()
    bad_nan[0, 1] = np.nan
    with pytest.raises(ConfigurationError, match=r"scores\[0, 1\] is NaN"):
        repair(np.array([0, 1, -1]), bad_nan, caps, [0])
    movable = np.ones(3, dtype=bool)
    with pytest.raises(ConfigurationError, match="0 <= low < high <= 1"):
        rebalance(np.array([0, 1, -1]), scores, caps, movable=movable, migration_cost=0, low=0.9)
    with pytest.raises(ConfigurationError, match="migration_cost"):
        rebalance(np.array([0, 1, -1]), scores, caps, movable=movable, migration_cost=-1)
    with pytest.raises(ConfigurationError, match="movable must be a bool array"):
        rebalance(np.array([0, 1, -1]), scores, caps, movable=np.ones(3), migration_cost=0)
    with pytest.raises(ConfigurationError, match="max_moves"):
        rebalance(
            np.array([0, 1, -1]), scores, caps, movable=movable, migration_cost=0, max_moves=-1
        )
