"""Tests for stellar_graph.consensus: rules, quorum, deadlines, ballot state and exact odds."""

from __future__ import annotations

import itertools
import json
import math
import random

import pytest

from stellar_graph.consensus import (
    Ballot,
    Decision,
    Proposal,
    Vote,
    decision_accuracy,
    decision_odds,
    log_odds_weight,
    vote,
)
from stellar_graph.errors import ConfigurationError, InvalidInputError

P = Proposal("p1", "Adopt the plan?")
VOTERS = [f"a{i}" for i in range(10)]


def _votes(choices: dict[str, str], at: float = 1.0) -> list[Vote]:
    return [Vote(v, c, f"{v} says {c}", cast_at=at) for v, c in choices.items()]


def test_majority_decides_with_more_than_half() -> None:
    votes = _votes({"a0": "approve", "a1": "approve", "a2": "reject"})
    d = vote(P, votes, ["a0", "a1", "a2"])
    assert (d.status, d.outcome, d.reason) == ("decided", "approve", "majority")
    assert d.tally == {"approve": 2.0, "reject": 1.0}
    assert d.participation == 1.0
    assert [v.voter for v in d.votes] == ["a0", "a1", "a2"]


def test_quorum_not_met_without_deadline() -> None:
    votes = _votes({f"a{i}": "approve" for i in range(4)})
    d = vote(P, votes, VOTERS, quorum=0.5)
    assert (d.status, d.outcome, d.reason) == ("no_decision", None, "quorum_not_met")
    assert d.participation == pytest.approx(0.4)
    # the tally is still reported for the record
    assert d.tally == {"approve": 4.0, "reject": 0.0}


def test_quorum_exactly_met_decides() -> None:
    votes = _votes({f"a{i}": "approve" for i in range(5)})
    d = vote(P, votes, VOTERS, quorum=0.5)
    assert (d.outcome, d.reason, d.participation) == ("approve", "majority", 0.5)


def test_timeout_when_deadline_passes_without_quorum() -> None:
    on_time = _votes({"a0": "approve", "a1": "approve", "a2": "reject"}, at=50.0)
    late = _votes({"a3": "approve", "a4": "approve", "a5": "approve"}, at=101.0)
    d = vote(P, on_time + late, VOTERS, quorum=0.5, deadline=100.0)
    assert (d.status, d.outcome, d.reason) == ("no_decision", None, "timeout")
    assert d.late_votes == 3
    assert d.participation == pytest.approx(0.3)
    assert {v.voter for v in d.votes} == {"a0", "a1", "a2"}


def test_vote_exactly_at_deadline_is_on_time() -> None:
    d = vote(P, _votes({"a0": "approve"}, at=100.0), ["a0"], deadline=100.0)
    assert (d.outcome, d.late_votes) == ("approve", 0)


def test_tie_is_an_explicit_no_decision() -> None:
    votes = _votes({"a0": "approve", "a1": "approve", "a2": "reject", "a3": "reject"})
    d = vote(P, votes, ["a0", "a1", "a2", "a3"])
    assert (d.status, d.outcome, d.reason) == ("no_decision", None, "tie")


def test_three_options_plurality_without_majority_is_insufficient() -> None:
    p3 = Proposal("p3", "Which?", ("x", "y", "z"))
    votes = _votes({"a0": "x", "a1": "x", "a2": "y", "a3": "z"})
    d = vote(p3, votes, ["a0", "a1", "a2", "a3"])
    assert (d.outcome, d.reason) == (None, "insufficient_support")
    votes = _votes({"a0": "x", "a1": "x", "a2": "y", "a3": "y", "a4": "z"})
    d = vote(p3, votes, ["a0", "a1", "a2", "a3", "a4"])
    assert (d.outcome, d.reason) == (None, "tie")


def test_unanimous_with_one_dissent() -> None:
    voters = ["a0", "a1", "a2", "a3"]
    votes = _votes({"a0": "approve", "a1": "approve", "a2": "approve", "a3": "reject"})
    d = vote(P, votes, voters, rule="unanimous")
    assert (d.status, d.outcome, d.reason) == ("no_decision", None, "dissent")
    agree = _votes({"a0": "approve", "a1": "approve", "a2": "approve", "a3": "abstain"})
    d = vote(P, agree, voters, rule="unanimous")
    assert (d.outcome, d.reason) == ("approve", "unanimous")


def test_weighted_expert_outweighs_four_average_voters() -> None:
    voters = ["expert", "b1", "b2", "b3", "b4"]
    choices = {"expert": "approve", "b1": "reject", "b2": "reject", "b3": "reject", "b4": "reject"}
    competence = {"expert": 0.9, "b1": 0.6, "b2": 0.6, "b3": 0.6, "b4": 0.6}
    d = vote(P, _votes(choices), voters, rule="weighted", competence=competence)
    assert (d.outcome, d.reason) == ("approve", "weighted")
    assert d.tally["approve"] == pytest.approx(math.log(9))
    assert d.tally["reject"] == pytest.approx(4 * math.log(1.5))
    simple = vote(P, _votes(choices), voters, rule="majority")
    assert simple.outcome == "reject"


def test_weighted_defaults_missing_competence_to_point_six() -> None:
    # 0.6 -> log(1.5) = 0.405; three such voters (1.216) beat one 0.75 voter (log 3 = 1.099)
    choices = {"x": "approve", "b1": "reject", "b2": "reject", "b3": "reject"}
    d = vote(P, _votes(choices), list(choices), rule="weighted", competence={"x": 0.75})
    assert d.outcome == "reject"
    assert d.tally["reject"] == pytest.approx(3 * math.log(1.5))
    # Vote.weight scales the log-odds weight
    heavy = [Vote("x", "approve", "sure", 2.0, cast_at=1.0), *_votes(choices)[1:]]
    d = vote(P, heavy, list(choices), rule="weighted", competence={"x": 0.75})
    assert d.outcome == "approve"
    assert d.tally["approve"] == pytest.approx(2 * math.log(3))


def test_weighted_tie_and_clipping() -> None:
    choices = {"a": "approve", "b": "reject"}
    d = vote(P, _votes(choices), ["a", "b"], rule="weighted")
    assert (d.outcome, d.reason) == (None, "tie")
    assert log_odds_weight(1.0) == pytest.approx(math.log(99))
    assert log_odds_weight(0.0) == pytest.approx(-math.log(99))
    assert log_odds_weight(0.5) == 0.0


@pytest.mark.parametrize(
    ("approvals", "expected"),
    [
        (5, ("decided", "approve", "supermajority")),
        (4, ("no_decision", None, "insufficient_support")),
    ],
)
def test_supermajority_five_vs_four_of_seven(approvals: int, expected: tuple) -> None:
    voters = [f"v{i}" for i in range(7)]
    choices = {v: ("approve" if i < approvals else "reject") for i, v in enumerate(voters)}
    d = vote(P, _votes(choices), voters, rule="supermajority", supermajority=2 / 3)
    assert (d.status, d.outcome, d.reason) == expected


def test_supermajority_threshold_is_inclusive() -> None:
    voters = [f"v{i}" for i in range(6)]
    choices = {v: ("approve" if i < 4 else "reject") for i, v in enumerate(voters)}
    d = vote(P, _votes(choices), voters, rule="supermajority", supermajority=2 / 3)
    assert d.outcome == "approve"  # 4/6 == 2/3


def test_abstentions_count_for_quorum_not_tally() -> None:
    voters = ["a0", "a1", "a2", "a3", "a4"]
    votes = _votes(
        {"a0": "approve", "a1": "approve", "a2": "reject", "a3": "abstain", "a4": "abstain"}
    )
    d = vote(P, votes, voters, quorum=1.0)
    assert (d.outcome, d.reason, d.participation) == ("approve", "majority", 1.0)
    assert d.tally == {"approve": 2.0, "reject": 1.0}
    everyone_abstains = _votes(dict.fromkeys(voters, "abstain"))
    for rule in ("majority", "supermajority", "unanimous", "weighted"):
        d = vote(P, everyone_abstains, voters, rule=rule)
        assert (d.outcome, d.reason) == (None, "insufficient_support"), rule


def test_late_votes_are_counted_and_ignored() -> None:
    voters = ["a0", "a1", "a2"]
    votes = _votes({"a0": "approve", "a1": "approve"}, at=5.0) + _votes({"a2": "reject"}, at=11.0)
    d = vote(P, votes, voters, deadline=10.0)
    assert (d.outcome, d.late_votes, d.participation) == ("approve", 1, pytest.approx(2 / 3))
    assert d.tally == {"approve": 2.0, "reject": 0.0}


def test_duplicates_first_counts_and_non_voters_rejected() -> None:
    votes = [
        Vote("a0", "reject", "first", cast_at=1.0),
        Vote("a0", "approve", "changed my mind", cast_at=2.0),
        Vote("a1", "approve", "", cast_at=1.5),
        Vote("intruder", "approve", "", cast_at=1.0),
        Vote("a2", "approve", "", cast_at=3.0),
    ]
    d = vote(P, votes, ["a0", "a1", "a2"])
    assert d.tally == {"approve": 2.0, "reject": 1.0}
    assert d.rejected_votes == 2
    assert next(v for v in d.votes if v.voter == "a0").reason == "first"
    # "first" means earliest cast_at, not list position
    d = vote(P, list(reversed(votes)), ["a0", "a1", "a2"])
    assert next(v for v in d.votes if v.voter == "a0").choice == "reject"


def test_ballot_cast_statuses_and_close() -> None:
    b = Ballot.open(P, ["a", "b", "c"], deadline=10.0, quorum=0.6)
    assert b.cast(Vote("a", " Approve ", "", cast_at=1.0), now=1.0) == "accepted"
    assert b.cast(Vote("a", "reject", "", cast_at=2.0), now=2.0) == "duplicate"
    assert b.cast(Vote("z", "reject", "", cast_at=2.0), now=2.0) == "not_a_voter"
    assert b.cast(Vote("b", "maybe", "", cast_at=2.0), now=2.0) == "invalid_choice"
    assert b.cast(Vote("b", "approve", "", cast_at=3.0), now=3.0) == "accepted"
    assert not b.complete
    # the agent's own timestamp does not decide lateness: the receiver's clock does
    assert b.cast(Vote("c", "reject", "", cast_at=9.0), now=10.5) == "late"
    d = b.close(now=10.5)
    assert (d.outcome, d.late_votes, d.rejected_votes) == ("approve", 1, 3)
    assert d.votes[0].choice == "approve"  # normalised to the option label
    assert b.close(now=99.0) is d
    assert b.cast(Vote("c", "reject", "", cast_at=11.0), now=11.0) == "late"
    assert b.decision is d


def test_ballot_closed_early_without_quorum_is_not_a_timeout() -> None:
    b = Ballot(P, ["a", "b", "c"], deadline=10.0)
    b.cast(Vote("a", "approve", "", cast_at=1.0), now=1.0)
    assert b.close(now=5.0).reason == "quorum_not_met"
    b2 = Ballot(P, ["a", "b", "c"], deadline=10.0)
    assert b2.close(now=10.0).reason == "timeout"


def test_ballot_round_trip_through_json() -> None:
    b = Ballot.open(
        Proposal("p9", "Pick", ("x", "y", "z")),
        ["a", "b", "c", "d"],
        rule="weighted",
        quorum=0.75,
        deadline=50.0,
        competence={"a": 0.8, "b": 0.55},
    )
    b.cast(Vote("a", "x", "because", 1.5, cast_at=1.0), now=1.0)
    b.cast(Vote("b", "y", "hm", cast_at=2.0), now=2.0)
    b.cast(Vote("b", "z", "again", cast_at=3.0), now=3.0)
    b.cast(Vote("c", "abstain", "", cast_at=60.0), now=60.0)
    state = json.loads(json.dumps(b.to_dict()))
    restored = Ballot.from_dict(state)
    assert restored.to_dict() == b.to_dict()
    restored.cast(Vote("c", "y", "", cast_at=4.0), now=4.0)
    b.cast(Vote("c", "y", "", cast_at=4.0), now=4.0)
    d1, d2 = b.close(now=50.0), restored.close(now=50.0)
    assert d1 == d2
    # x: 1.5 * log(0.8/0.2); y: log(0.55/0.45) + log(0.6/0.4) (c has no competence -> 0.6)
    assert d1.outcome == "x"
    assert d1.tally["y"] == pytest.approx(math.log(0.55 / 0.45) + math.log(1.5))
    assert (d1.late_votes, d1.rejected_votes, d1.participation) == (1, 1, 0.75)
    again = Ballot.from_dict(json.loads(json.dumps(restored.to_dict())))
    assert again.decision == d1
    assert Decision.from_dict(json.loads(json.dumps(d1.to_dict()))) == d1


def test_validation_errors_name_the_allowed_values() -> None:
    with pytest.raises(
        ConfigurationError, match="'majority', 'supermajority', 'unanimous', 'weighted'"
    ):
        vote(P, [], ["a"], rule="plurality")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="quorum 1.5"):
        vote(P, [], ["a"], quorum=1.5)
    with pytest.raises(ConfigurationError, match=r"supermajority 0\.5 must be in \(0\.5, 1\]"):
        vote(P, [], ["a"], supermajority=0.5)
    with pytest.raises(ConfigurationError, match="competence"):
        vote(P, [], ["a"], rule="weighted", competence={"a": 1.2})
    with pytest.raises(ConfigurationError, match=r"\['a'\] more than once"):
        vote(P, [], ["a", "a"])
    with pytest.raises(ConfigurationError, match="non-empty"):
        vote(P, [], [])
    with pytest.raises(InvalidInputError, match="Vote.weight -1"):
        Vote("a", "approve", "", -1, cast_at=0.0)
    with pytest.raises(InvalidInputError, match="reserved 'abstain'"):
        Proposal("p", "d", ("yes", "Abstain"))
    with pytest.raises(InvalidInputError, match="distinct"):
        Proposal("p", "d", ("Yes", "yes"))
    with pytest.raises(ConfigurationError, match="version"):
        Ballot.from_dict({"version": 99})


def test_vote_is_independent_of_submission_order() -> None:
    rng = random.Random(7)
    voters = [f"v{i}" for i in range(9)]
    for _ in range(50):
        votes = [
            Vote(v, rng.choice(["approve", "reject", "abstain"]), "", cast_at=float(i))
            for i, v in enumerate(voters)
            if rng.random() < 0.9
        ]
        shuffled = votes[:]
        rng.shuffle(shuffled)
        for rule in ("majority", "supermajority", "unanimous", "weighted"):
            a = vote(P, votes, voters, rule=rule)
            b = vote(P, shuffled, voters, rule=rule)
            assert (a.outcome, a.reason, a.tally) == (b.outcome, b.reason, b.tally)


# -- exact arithmetic anchors (note "T. Targets" 17, B8) ------------------------------------


def test_anchor_majority_of_five_at_point_seven() -> None:
    assert decision_accuracy([0.7] * 5, "majority") == pytest.approx(0.837, abs=0.001)
    # closed form: P(Binomial(5, 0.7) >= 3)
    exact = sum(math.comb(5, k) * 0.7**k * 0.3 ** (5 - k) for k in range(3, 6))
    assert decision_accuracy([0.7] * 5) == pytest.approx(exact, abs=1e-12)


def test_anchor_log_odds_weighting_beats_simple_majority() -> None:
    panel = [0.9, 0.6, 0.6, 0.6, 0.6]
    assert decision_accuracy(panel, "weighted") == pytest.approx(0.90, abs=1e-12)
    # simple majority: expert right and >= 2 of 4 right, or expert wrong and >= 3 of 4 right
    exact = 0.9 * (1 - 0.4**4 - 4 * 0.6 * 0.4**3) + 0.1 * (4 * 0.6**3 * 0.4 + 0.6**4)
    assert decision_accuracy(panel, "majority") == pytest.approx(exact, abs=1e-12)
    assert decision_accuracy(panel, "majority") == pytest.approx(0.785, abs=0.0015)  # B8 (MC)
    assert decision_accuracy(panel, "majority") < decision_accuracy([0.9])


def test_anchor_supermajority_and_unanimity_of_seven() -> None:
    sm = decision_odds([0.7] * 7, "supermajority")
    assert sm.decided == pytest.approx(0.675, abs=0.001)  # B8: 67.5% (MC)
    assert sm.accuracy_given_decided == pytest.approx(0.957, abs=0.001)
    assert sm.correct + sm.wrong + sm.no_decision == pytest.approx(1.0, abs=1e-12)
    assert decision_odds([0.7] * 7, "unanimous").decided == pytest.approx(0.7**7 + 0.3**7)
    assert decision_accuracy([0.7] * 7, "majority") == pytest.approx(0.873964, abs=1e-9)
    even = decision_odds([0.7] * 4, "majority")
    assert even.no_decision == pytest.approx(6 * 0.49 * 0.09)  # a 2-2 tie


@pytest.mark.parametrize("rule", ["majority", "supermajority", "unanimous", "weighted"])
def test_decision_odds_match_brute_force_through_vote(rule: str) -> None:
    competences = [0.9, 0.55, 0.7, 0.7, 0.62]
    voters = [f"v{i}" for i in range(len(competences))]
    comp = dict(zip(voters, competences, strict=True))
    totals = {"approve": 0.0, "reject": 0.0, None: 0.0}
    for pattern in itertools.product([True, False], repeat=len(voters)):
        prob = math.prod(p if ok else 1 - p for p, ok in zip(competences, pattern, strict=True))
        votes = [
            Vote(v, "approve" if ok else "reject", "", cast_at=0.0)
            for v, ok in zip(voters, pattern, strict=True)
        ]
        d = vote(P, votes, voters, rule=rule, competence=comp)  # type: ignore[arg-type]
        totals[d.outcome] += prob
    odds = decision_odds(competences, rule)  # type: ignore[arg-type]
    assert odds.correct == pytest.approx(totals["approve"], abs=1e-12)
    assert odds.wrong == pytest.approx(totals["reject"], abs=1e-12)
    assert odds.no_decision == pytest.approx(totals[None], abs=1e-12)


def test_decision_odds_rejects_bad_input() -> None:
    with pytest.raises(ConfigurationError, match="at least one voter"):
        decision_odds([])
    with pytest.raises(ConfigurationError, match="probabilities"):
        decision_odds([0.5, 1.5])
    with pytest.raises(ConfigurationError, match="states"):
        decision_odds([0.5 + i / 100 for i in range(21)])
