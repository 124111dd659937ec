"""Voting among agents: quorum, deadline and four decision rules, as a pure state machine.

Everything here is deterministic: times are plain floats (epoch seconds) handed in by the caller,
so a graph node can drive a :class:`Ballot` with the real clock and a test with a fake one.

Semantics shared by :func:`vote` and :class:`Ballot`:

* Only listed voters may vote; the first valid vote of a voter counts, later ones are turned away
  (``rejected_votes``). A choice that is not an option (matched ignoring case and surrounding
  spaces) or ``"abstain"`` is turned away too, and the voter may still vote.
* A vote arriving after the deadline is ignored and counted in ``late_votes``.
* Quorum is the fraction of voters with a counted vote, abstentions included. Below quorum there
  is no decision: ``"timeout"`` if the deadline ended the round, else ``"quorum_not_met"``.
* Abstentions count for quorum but not in the tally. If everyone abstains there is no decision
  (``"insufficient_support"``) under every rule.
* ``majority``: an option with more than half of the non-abstaining votes. Otherwise
  ``"tie"`` when the top count is shared, else ``"insufficient_support"`` (a plurality with
  three or more options).
* ``supermajority``: an option with at least ``supermajority`` of the non-abstaining votes,
  otherwise ``"insufficient_support"``.
* ``unanimous``: every non-abstaining vote names the same option, otherwise ``"dissent"``.
* ``weighted``: each vote weighs ``vote.weight * log(p / (1 - p))`` where ``p`` is the voter's
  competence clipped to [0.01, 0.99] (Nitzan & Paroush's optimal weights for independent voters).
  Voters without a competence get ``p = 0.6``: slightly better than chance, so with no competences
  at all the rule is a plain plurality. A voter below chance (p < 0.5) counts against its choice.
  The highest total wins; a shared top total is a ``"tie"``.
* In the count-based rules each voter counts once and ``Vote.weight`` is ignored.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import product
from typing import Any, Literal, NamedTuple, get_args

from stellar_graph.errors import ConfigurationError, InvalidInputError

__all__ = [
    "ABSTAIN",
    "DEFAULT_COMPETENCE",
    "RULES",
    "Ballot",
    "CastStatus",
    "Decision",
    "DecisionOdds",
    "DecisionReason",
    "Proposal",
    "Rule",
    "Vote",
    "decision_accuracy",
    "decision_odds",
    "log_odds_weight",
    "vote",
]

logger = logging.getLogger(__name__)

Rule = Literal["majority", "supermajority", "unanimous", "weighted"]
DecisionReason = Literal[
    "majority",
    "supermajority",
    "unanimous",
    "weighted",
    "quorum_not_met",
    "timeout",
    "tie",
    "dissent",
    "insufficient_support",
]
CastStatus = Literal["accepted", "late", "duplicate", "not_a_voter", "invalid_choice"]
RULES: tuple[str, ...] = get_args(Rule)
ABSTAIN = "abstain"
DEFAULT_COMPETENCE = 0.6
_P_MIN, _P_MAX = 0.01, 0.99
_EPS = 1e-9  # float slack for "fraction >= threshold" so 4/6 meets 2/3 however it was written
_MAX_STATES = 1 << 20  # decision_odds enumeration budget (a few seconds at worst)
_STATE_VERSION = 1


def _bad(field_name: str, value: object, message: str) -> InvalidInputError:
    return InvalidInputError(
        f"{field_name} {value!r} {message}",
        errors=[{"field": field_name, "value": value, "message": message}],
    )


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True, slots=True)
class Vote:
    """One voter's ballot.

    Attributes:
        voter: the voting agent's id.
        choice: an option label of the proposal, or ``"abstain"``.
        reason: the voter's justification, kept for the record.
        weight: a non-negative multiplier (e.g. the voter's stated confidence); used only by the
            ``weighted`` rule.
        cast_at: when the vote was cast, in epoch seconds (keyword-only).
    """

    voter: str
    choice: str
    reason: str
    weight: float = 1.0
    cast_at: float = field(kw_only=True)

    def __post_init__(self) -> None:
        if not isinstance(self.voter, str) or not self.voter:
            raise _bad("Vote.voter", self.voter, "must be a non-empty agent id")
        if not isinstance(self.choice, str) or not self.choice.strip():
            raise _bad("Vote.choice", self.choice, "must be an option label or 'abstain'")
        if not _finite(self.weight) or self.weight < 0:
            raise _bad("Vote.weight", self.weight, "must be a finite number >= 0")
        if not _finite(self.cast_at):
            raise _bad("Vote.cast_at", self.cast_at, "must be a finite epoch time in seconds")

    def to_dict(self) -> dict[str, Any]:
        """Return the vote as a JSON-able dict."""
        return {
            "voter": self.voter,
            "choice": self.choice,
            "reason": self.reason,
            "weight": self.weight,
            "cast_at": self.cast_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Vote:
        """Rebuild a vote from :meth:`to_dict` output."""
        return cls(**data)


@dataclass(frozen=True, slots=True)
class Proposal:
    """What is being voted on.

    Attributes:
        proposal_id: a unique id.
        description: the question put to the voters.
        options: two or more distinct labels (case-insensitive); ``"abstain"`` is reserved.
    """

    proposal_id: str
    description: str
    options: tuple[str, ...] = ("approve", "reject")

    def __post_init__(self) -> None:
        if not isinstance(self.proposal_id, str) or not self.proposal_id:
            raise _bad("Proposal.proposal_id", self.proposal_id, "must be a non-empty id")
        options = tuple(self.options)
        object.__setattr__(self, "options", options)
        keys = [o.strip().casefold() if isinstance(o, str) else "" for o in options]
        if len(options) < 2 or "" in keys or len(set(keys)) != len(keys):
            raise _bad(
                "Proposal.options", options, "must hold at least two distinct non-empty labels"
            )
        if ABSTAIN in keys:
            raise _bad("Proposal.options", options, "must not include the reserved 'abstain'")

    def to_dict(self) -> dict[str, Any]:
        """Return the proposal as a JSON-able dict."""
        return {
            "proposal_id": self.proposal_id,
            "description": self.description,
            "options": list(self.options),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Proposal:
        """Rebuild a proposal from :meth:`to_dict` output."""
        return cls(data["proposal_id"], data.get("description", ""), tuple(data["options"]))


@dataclass(frozen=True)
class Decision:
    """The result of one vote round.

    Attributes:
        proposal_id: the proposal decided on.
        outcome: the winning option, or None for an explicit no-decision.
        status: ``"decided"`` or ``"no_decision"``.
        reason: the rule that decided, or why nothing was decided.
        tally: option -> vote count (count rules) or total log-odds weight (``weighted``).
        participation: fraction of voters with a counted vote (abstentions included).
        votes: the counted votes, in the order they were accepted.
        late_votes: votes that arrived after the deadline (or after the ballot closed).
        rule: the rule applied.
        rejected_votes: votes turned away (non-voters, duplicates, unknown options).
    """

    proposal_id: str
    outcome: str | None
    status: Literal["decided", "no_decision"]
    reason: DecisionReason
    tally: dict[str, float]
    participation: float
    votes: tuple[Vote, ...]
    late_votes: int
    rule: Rule
    rejected_votes: int = 0

    @property
    def decided(self) -> bool:
        """True when an option won."""
        return self.status == "decided"

    def to_dict(self) -> dict[str, Any]:
        """Return the decision as a JSON-able dict."""
        out = {f: getattr(self, f) for f in self.__dataclass_fields__}  # shallow: asdict is slow
        return {**out, "tally": dict(self.tally), "votes": [v.to_dict() for v in self.votes]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Decision:
        """Rebuild a decision from :meth:`to_dict` output."""
        votes = tuple(Vote.from_dict(v) for v in data["votes"])
        return cls(**{**data, "votes": votes, "tally": dict(data["tally"])})


def log_odds_weight(p: float) -> float:
    """Return the optimal independent-voter weight ``log(p / (1 - p))``, p clipped to [0.01, 0.99].

    Args:
        p: the voter's probability of being right.

    Returns:
        The weight: 0 at p = 0.5, negative below chance.
    """
    p = min(max(p, _P_MIN), _P_MAX)
    return math.log(p / (1.0 - p))


def _check_rule(rule: object, quorum: object, supermajority: object) -> None:
    if rule not in RULES:
        allowed = ", ".join(repr(r) for r in RULES)
        raise ConfigurationError(
            f"rule {rule!r} is not a voting rule; choose one of {allowed}.",
            field="rule",
            value=rule,
        )
    if not _finite(quorum) or not 0.0 <= quorum <= 1.0:  # type: ignore[operator]
        raise ConfigurationError(
            f"quorum {quorum!r} must be a fraction of voters in [0, 1], e.g. 0.5.",
            field="quorum",
            value=quorum,
        )
    if not _finite(supermajority) or not 0.5 < supermajority <= 1.0:  # type: ignore[operator]
        raise ConfigurationError(
            f"supermajority {supermajority!r} must be in (0.5, 1], e.g. 2/3, "
            f"so that two options can never both reach it.",
            field="supermajority",
            value=supermajority,
        )


def _check_competence(competence: Mapping[str, float] | None) -> dict[str, float]:
    if competence is None:
        return {}
    bad = {k: p for k, p in competence.items() if not _finite(p) or not 0.0 <= p <= 1.0}
    if bad:
        raise ConfigurationError(
            f"competence values must be probabilities in [0, 1], got {bad!r}.",
            field="competence",
            value=bad,
        )
    return {str(k): float(p) for k, p in competence.items()}


def _check_voters(voters: Sequence[str]) -> tuple[str, ...]:
    listed = tuple(voters)
    if not listed or any(not isinstance(v, str) or not v for v in listed):
        raise ConfigurationError(
            f"voters {listed!r} must be a non-empty list of agent ids.",
            field="voters",
            value=listed,
        )
    dupes = sorted(v for v, n in Counter(listed).items() if n > 1)
    if dupes:
        raise ConfigurationError(
            f"voters lists {dupes!r} more than once; list each agent once.",
            field="voters",
            value=dupes,
        )
    return listed


def _apply_rule(
    rule: str, tally: Mapping[str, float], counted: int, supermajority: float
) -> tuple[str | None, DecisionReason]:
    """Pick the winner from a tally of the non-abstaining votes (shared with decision_odds)."""
    if counted == 0:
        return None, "insufficient_support"
    best = max(tally.values())
    if rule == "weighted":
        tol = _EPS * max(1.0, sum(abs(w) for w in tally.values()))
        top = [o for o, w in tally.items() if w >= best - tol]
        return (top[0], "weighted") if len(top) == 1 else (None, "tie")
    top = [o for o, c in tally.items() if c == best]
    if rule == "majority":
        if 2 * best > counted:
            return top[0], "majority"
        return None, "tie" if len(top) > 1 else "insufficient_support"
    if rule == "supermajority":
        if best >= supermajority * counted - _EPS:
            return top[0], "supermajority"
        return None, "insufficient_support"
    return (top[0], "unanimous") if best == counted else (None, "dissent")


class Ballot:
    """One vote round as a JSON-able state machine: open, cast votes, close.

    Lateness is judged by the ``now`` passed to :meth:`cast` (the receiver's clock), not by
    ``Vote.cast_at``: an agent's own timestamp is not trusted to enforce the deadline.

    Example:
        >>> b = Ballot.open(Proposal("p1", "Ship it?"), ["a", "b", "c"], deadline=10.0)
        >>> b.cast(Vote("a", "approve", "tests pass", cast_at=1.0), now=1.0)
        'accepted'
        >>> b.cast(Vote("b", "approve", "ok", cast_at=2.0), now=2.0)
        'accepted'
        >>> b.close(now=10.0).outcome
        'approve'
    """

    def __init__(
        self,
        proposal: Proposal,
        voters: Sequence[str],
        *,
        rule: Rule = "majority",
        quorum: float = 0.5,
        supermajority: float = 2 / 3,
        deadline: float | None = None,
        competence: Mapping[str, float] | None = None,
    ) -> None:
        """Open a vote round.

        Args:
            proposal: what is voted on.
            voters: the agent ids allowed to vote (unique, non-empty).
            rule: ``"majority"``, ``"supermajority"``, ``"unanimous"`` or ``"weighted"``.
            quorum: fraction of voters that must cast a counted vote, in [0, 1].
            supermajority: threshold for the ``supermajority`` rule, in (0.5, 1].
            deadline: epoch seconds after which votes are late, or None for no deadline.
            competence: voter -> probability of being right (``weighted`` rule); default 0.6.

        Raises:
            ConfigurationError: an unknown rule or an out-of-range parameter.
        """
        _check_rule(rule, quorum, supermajority)
        if deadline is not None and not _finite(deadline):
            raise ConfigurationError(
                f"deadline {deadline!r} must be a finite epoch time or None.",
                field="deadline",
                value=deadline,
            )
        self.proposal = proposal
        self.voters = _check_voters(voters)
        self.rule: Rule = rule
        self.quorum = float(quorum)
        self.supermajority = float(supermajority)
        self.deadline = None if deadline is None else float(deadline)
        self.competence = _check_competence(competence)
        self._voter_set = frozenset(self.voters)
        self._options = {o.strip().casefold(): o for o in proposal.options}
        self._options[ABSTAIN] = ABSTAIN
        self._accepted: dict[str, Vote] = {}
        self.late_votes = 0
        self.rejected_votes = 0
        self._decision: Decision | None = None

    @classmethod
    def open(cls, proposal: Proposal, voters: Sequence[str], **options: Any) -> Ballot:
        """Open a vote round; an alias of the constructor that reads well in graph nodes.

        Args:
            proposal: what is voted on.
            voters: the agent ids allowed to vote.
            **options: ``rule``, ``quorum``, ``supermajority``, ``deadline``, ``competence``.

        Returns:
            An open ballot.
        """
        return cls(proposal, voters, **options)

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has run."""
        return self._decision is not None

    @property
    def decision(self) -> Decision | None:
        """The decision, once closed."""
        return self._decision

    @property
    def complete(self) -> bool:
        """True when every voter has a counted vote, so the round may close early."""
        return len(self._accepted) == len(self.voters)

    def deadline_passed(self, now: float) -> bool:
        """Return True if ``now`` is at or after the deadline."""
        return self.deadline is not None and now >= self.deadline

    def cast(self, vote: Vote, now: float) -> CastStatus:
        """Receive one vote.

        Args:
            vote: the vote.
            now: the receiver's clock, epoch seconds.

        Returns:
            ``"accepted"``; ``"not_a_voter"``; ``"late"`` (after the deadline or after close;
            the decision is not changed); ``"duplicate"`` (the voter already has a counted vote);
            ``"invalid_choice"`` (not an option, the voter may vote again).
        """
        if vote.voter not in self._voter_set:
            self.rejected_votes += 1
            return "not_a_voter"
        if self._decision is not None or (self.deadline is not None and now > self.deadline):
            self.late_votes += 1
            return "late"
        if vote.voter in self._accepted:
            self.rejected_votes += 1
            return "duplicate"
        choice = self._options.get(vote.choice.strip().casefold())
        if choice is None:
            self.rejected_votes += 1
            logger.debug("vote of %s names unknown option %r", vote.voter, vote.choice)
            return "invalid_choice"
        self._accepted[vote.voter] = vote if choice == vote.choice else replace(vote, choice=choice)
        return "accepted"

    def close(self, now: float) -> Decision:
        """Close the round and decide; later calls return the same decision.

        Args:
            now: the clock at closing, epoch seconds. Closing before the deadline without
                quorum gives ``"quorum_not_met"``; at or after it, ``"timeout"``.

        Returns:
            The decision.
        """
        if self._decision is not None:
            return self._decision
        votes = tuple(self._accepted.values())
        counted = [v for v in votes if v.choice != ABSTAIN]
        tally = self._tally(counted)
        if len(votes) < self.quorum * len(self.voters) - _EPS:
            outcome, reason = None, "timeout" if self.deadline_passed(now) else "quorum_not_met"
        else:
            outcome, reason = _apply_rule(self.rule, tally, len(counted), self.supermajority)
        self._decision = Decision(
            proposal_id=self.proposal.proposal_id,
            outcome=outcome,
            status="decided" if outcome is not None else "no_decision",
            reason=reason,  # type: ignore[arg-type]
            tally=tally,
            participation=len(votes) / len(self.voters),
            votes=votes,
            late_votes=self.late_votes,
            rule=self.rule,
            rejected_votes=self.rejected_votes,
        )
        logger.debug(
            "ballot %s closed: %s (%s)", self.proposal.proposal_id, outcome, self._decision.reason
        )
        return self._decision

    def _tally(self, counted: Sequence[Vote]) -> dict[str, float]:
        tally = dict.fromkeys(self.proposal.options, 0.0)
        if self.rule == "weighted":
            for v in counted:
                p = self.competence.get(v.voter, DEFAULT_COMPETENCE)
                tally[v.choice] += v.weight * log_odds_weight(p)
        else:
            for v in counted:
                tally[v.choice] += 1.0
        return tally

    def to_dict(self) -> dict[str, Any]:
        """Return the full ballot state as a JSON-able dict (for a checkpoint)."""
        return {
            "version": _STATE_VERSION,
            "proposal": self.proposal.to_dict(),
            "voters": list(self.voters),
            "rule": self.rule,
            "quorum": self.quorum,
            "supermajority": self.supermajority,
            "deadline": self.deadline,
            "competence": dict(self.competence),
            "accepted": [v.to_dict() for v in self._accepted.values()],
            "late_votes": self.late_votes,
            "rejected_votes": self.rejected_votes,
            # the decision's votes are the accepted ones: stored once to halve the checkpoint
            "decision": None
            if self._decision is None
            else {**self._decision.to_dict(), "votes": None},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Ballot:
        """Rebuild a ballot from :meth:`to_dict` output.

        Raises:
            ConfigurationError: the state was written by an unknown format version.
        """
        if data.get("version") != _STATE_VERSION:
            raise ConfigurationError(
                f"ballot state version {data.get('version')!r} is not supported "
                f"(expected {_STATE_VERSION}); re-open the ballot.",
                field="version",
                value=data.get("version"),
            )
        ballot = cls(
            Proposal.from_dict(data["proposal"]),
            data["voters"],
            rule=data["rule"],
            quorum=data["quorum"],
            supermajority=data["supermajority"],
            deadline=data["deadline"],
            competence=data["competence"],
        )
        ballot._accepted = {v["voter"]: Vote.from_dict(v) for v in data["accepted"]}
        ballot.late_votes = int(data["late_votes"])
        ballot.rejected_votes = int(data["rejected_votes"])
        if data["decision"] is not None:
            votes = tuple(ballot._accepted.values())
            ballot._decision = replace(
                Decision.from_dict({**data["decision"], "votes": ()}), votes=votes
            )
        return ballot


def vote(
    proposal: Proposal,
    votes: Iterable[Vote],
    voters: Sequence[str],
    *,
    rule: Rule = "majority",
    quorum: float = 0.5,
    supermajority: float = 2 / 3,
    deadline: float | None = None,
    competence: Mapping[str, float] | None = None,
) -> Decision:
    """Decide a proposal from a finished collection of votes.

    Votes are taken in ``cast_at`` order (ties keep the given order); a vote is late if its
    ``cast_at`` is after ``deadline``. With a deadline, the round is judged as ended by it, so
    a missing quorum is reported as ``"timeout"``; without one, as ``"quorum_not_met"``.

    Args:
        proposal: what is voted on.
        votes: the votes received.
        voters: the agent ids allowed to vote.
        rule: ``"majority"``, ``"supermajority"``, ``"unanimous"`` or ``"weighted"``.
        quorum: fraction of voters that must cast a counted vote, in [0, 1].
        supermajority: threshold for the ``supermajority`` rule, in (0.5, 1].
        deadline: epoch seconds after which votes are late, or None.
        competence: voter -> probability of being right (``weighted`` rule); default 0.6.

    Returns:
        The decision (``status="no_decision"`` with a reason when no option wins).

    Raises:
        ConfigurationError: an unknown rule or an out-of-range parameter.
    """
    ballot = Ballot(
        proposal,
        voters,
        rule=rule,
        quorum=quorum,
        supermajority=supermajority,
        deadline=deadline,
        competence=competence,
    )
    ordered = sorted(votes, key=lambda v: v.cast_at)
    for v in ordered:
        ballot.cast(v, v.cast_at)
    if deadline is not None:
        return ballot.close(deadline)
    return ballot.close(ordered[-1].cast_at if ordered else 0.0)


class DecisionOdds(NamedTuple):
    """Probabilities of a binary vote's three results (they sum to 1)."""

    correct: float
    wrong: float
    no_decision: float

    @property
    def decided(self) -> float:
        """Probability that some option wins."""
        return self.correct + self.wrong

    @property
    def accuracy_given_decided(self) -> float:
        """Probability of being right when a decision is reached (nan if never decided)."""
        return self.correct / self.decided if self.decided > 0 else math.nan


def decision_odds(
    competences: Sequence[float], rule: Rule = "majority", *, supermajority: float = 2 / 3
) -> DecisionOdds:
    """Exact odds that independent voters reach the right binary decision under a rule.

    Voter ``i`` votes for the right option with probability ``competences[i]``, nobody abstains,
    and quorum is met. Voters with equal competence are exchangeable, so the enumeration runs
    over how many of each group are right (binomial terms): ``n + 1`` states for an equal panel,
    ``2 ** n`` at worst. The winner is picked by the same code as :func:`vote`.

    Args:
        competences: each voter's probability of being right, in [0, 1].
        rule: the decision rule; ``weighted`` uses the log-odds of these competences.
        supermajority: threshold for the ``supermajority`` rule.

    Returns:
        P(right option wins), P(wrong option wins), P(no decision).

    Raises:
        ConfigurationError: a bad rule or competence, or more than 2**20 states to enumerate.
    """
    _check_rule(rule, 0.5, supermajority)
    checked = _check_competence({str(i): p for i, p in enumerate(competences)})
    if not checked:
        raise ConfigurationError(
            "competences must list at least one voter.", field="competences", value=competences
        )
    groups = sorted(Counter(checked.values()).items())
    states = math.prod(m + 1 for _, m in groups)
    if states > _MAX_STATES:
        raise ConfigurationError(
            f"decision_odds would enumerate {states} states (limit {_MAX_STATES}); "
            f"round the competences so that more voters share a value.",
            field="competences",
            value=len(checked),
        )
    n = len(checked)
    weights = [log_odds_weight(p) for p, _ in groups]
    # pmfs[g][k]: probability that exactly k voters of group g are right
    pmfs = [[math.comb(m, k) * p**k * (1 - p) ** (m - k) for k in range(m + 1)] for p, m in groups]
    odds: dict[str | None, float] = {"right": 0.0, "wrong": 0.0, None: 0.0}
    for ks in product(*(range(m + 1) for _, m in groups)):
        prob = math.prod(pmf[k] for pmf, k in zip(pmfs, ks, strict=True))
        if rule == "weighted":
            right = sum(k * w for k, w in zip(ks, weights, strict=True))
            wrong = sum((m - k) * w for k, (_, m), w in zip(ks, groups, weights, strict=True))
        else:
            right = float(sum(ks))
            wrong = n - right
        winner, _ = _apply_rule(rule, {"right": right, "wrong": wrong}, n, supermajority)
        odds[winner] += prob
    return DecisionOdds(odds["right"], odds["wrong"], odds[None])


def decision_accuracy(
    competences: Sequence[float], rule: Rule = "majority", *, supermajority: float = 2 / 3
) -> float:
    """Exact probability that a panel decides a binary question correctly.

    A no-decision counts as not correct; see :func:`decision_odds` for the full split.

    Args:
        competences: each voter's probability of being right, in [0, 1].
        rule: the decision rule.
        supermajority: threshold for the ``supermajority`` rule.

    Returns:
        P(the right option wins).

    Example:
        >>> round(decision_accuracy([0.7] * 5), 3)
        0.837
        >>> round(decision_accuracy([0.9, 0.6, 0.6, 0.6, 0.6], "weighted"), 3)
        0.9
    """
    return decision_odds(competences, rule, supermajority=supermajority).correct
