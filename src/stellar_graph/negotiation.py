"""Iterated FIPA Contract Net (SC00029H) as a pure, JSON-able state machine.

One :class:`ContractNet` negotiates several subtasks among candidate agents:

1. :meth:`ContractNet.open_round` sends a ``cfp`` for every subtask still without an agent, to
   every candidate that still has capacity and has not failed that subtask.
2. :meth:`ContractNet.receive` takes ``propose`` / ``refuse`` answers until the bid window closes;
   later answers are ignored and counted as late.
3. :meth:`ContractNet.close_round` awards: ``accept-proposal`` to the winner of each subtask,
   ``reject-proposal`` to every other proposer.
4. :meth:`ContractNet.report` records ``inform-done`` or ``failure``; a failure re-opens the
   subtask for the next round (without the agent that failed it).

Subtasks nobody took go to the next round until ``rounds_limit`` rounds have run. Awarding is a
global greedy pass over all proposals of the round, highest score first, ties broken by subtask
order then agent id. Without capacity limits that is simply "each subtask to its best bid";
with them it is the 1/2-approximate sorted greedy rather than arrival-order greedy. An agent
that has reached its capacity is rejected (``reason: "capacity"``) and not invited again while
it is full. Times are plain floats passed in by the caller, so everything is deterministic.

With ``n`` invited agents that all propose, one subtask costs ``3n + 1`` messages:
``n`` cfp + ``n`` propose + 1 accept + ``n - 1`` reject + 1 inform.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from stellar_graph.errors import ConfigurationError, InvalidInputError, OrchestrationError

__all__ = [
    "Award",
    "Bid",
    "CallForProposals",
    "ContractNet",
    "Performative",
    "ReceiveStatus",
]

logger = logging.getLogger(__name__)

Performative = Literal[
    "cfp", "propose", "refuse", "accept-proposal", "reject-proposal", "inform-done", "failure"
]
ReceiveStatus = Literal["accepted", "late", "duplicate", "unknown_cfp", "not_invited"]
_STATE_VERSION = 1


def _shallow(obj: Any) -> dict[str, Any]:
    # dataclasses.asdict deep-copies field by field and dominated checkpoint time
    return {f: getattr(obj, f) for f in obj.__dataclass_fields__}


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True, slots=True)
class CallForProposals:
    """A ``cfp``: one subtask offered to the invited agents in one round.

    Attributes:
        cfp_id: ``"<subtask_id>#r<round>"``.
        subtask_id: the subtask offered.
        description: what the subtask is.
        required_skills: skills it needs.
        deadline: epoch seconds; answers received after it are late.
        round: the round number, from 1.
        invited: the agents asked, sorted.
    """

    cfp_id: str
    subtask_id: str
    description: str
    required_skills: tuple[str, ...]
    deadline: float
    round: int
    invited: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """Return the cfp as a JSON-able dict."""
        return {
            **_shallow(self),
            "required_skills": list(self.required_skills),
            "invited": list(self.invited),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CallForProposals:
        """Rebuild a cfp from :meth:`to_dict` output."""
        return cls(
            **{
                **data,
                "required_skills": tuple(data["required_skills"]),
                "invited": tuple(data["invited"]),
            }
        )


@dataclass(frozen=True, slots=True)
class Bid:
    """An answer to a cfp: ``propose`` (with a score, higher is better) or ``refuse``.

    Attributes:
        agent_id: who answers.
        cfp_id: the cfp answered.
        kind: ``"propose"`` or ``"refuse"``.
        score: the proposal's value to the manager; higher wins. Ignored for refusals.
        note: the proposal's content (plan, estimate), kept for the record.
        reason: why the agent refuses, kept for the record.
        sent_at: when the agent sent it, epoch seconds (keyword-only; informational: lateness
            is judged by the manager's clock).
    """

    agent_id: str
    cfp_id: str
    kind: Literal["propose", "refuse"]
    score: float = 0.0
    note: str = ""
    reason: str = ""
    sent_at: float = field(kw_only=True)

    def __post_init__(self) -> None:
        problems: list[tuple[str, object, str]] = []
        if self.kind not in ("propose", "refuse"):
            problems.append(("Bid.kind", self.kind, "must be 'propose' or 'refuse'"))
        if not _finite(self.score):
            problems.append(("Bid.score", self.score, "must be a finite number"))
        if not _finite(self.sent_at):
            problems.append(("Bid.sent_at", self.sent_at, "must be a finite epoch time"))
        if problems:
            name, value, message = problems[0]
            raise InvalidInputError(
                f"{name} {value!r} {message}",
                errors=[{"field": f, "value": v, "message": m} for f, v, m in problems],
            )

    def to_dict(self) -> dict[str, Any]:
        """Return the bid as a JSON-able dict."""
        return _shallow(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Bid:
        """Rebuild a bid from :meth:`to_dict` output."""
        return cls(**data)


@dataclass(frozen=True, slots=True)
class Award:
    """The outcome of one subtask in one round.

    Attributes:
        subtask_id: the subtask.
        agent_id: the winner, or None if nobody was awarded this round.
        score: the winning score (0.0 without a winner).
        round: the round number.
        rejected: proposers that got ``reject-proposal``, sorted.
        refused: agents that answered ``refuse``, sorted.
        late: answers that arrived after the deadline.
        reason: ``"awarded"``, or why not: ``"all_refused"``, ``"no_proposals"`` (some refused,
            the rest were silent or late), ``"late_bids_only"``, ``"no_bids"``, ``"capacity"``
            (every proposer was full).
    """

    subtask_id: str
    agent_id: str | None
    score: float
    round: int
    rejected: tuple[str, ...]
    refused: tuple[str, ...]
    late: int
    reason: str = "awarded"

    def to_dict(self) -> dict[str, Any]:
        """Return the award as a JSON-able dict."""
        return {**_shallow(self), "rejected": list(self.rejected), "refused": list(self.refused)}


def _subtask_record(raw: Mapping[str, Any], candidates: frozenset[str]) -> dict[str, Any]:
    sid = raw.get("id", raw.get("subtask_id"))
    if not isinstance(sid, str) or not sid:
        raise ConfigurationError(
            f"subtask {dict(raw)!r} needs a non-empty string 'id' (or 'subtask_id').",
            field="subtasks.id",
            value=sid,
        )
    own = raw.get("candidates")
    if own is not None and not set(own) <= candidates:
        unknown = sorted(set(own) - candidates)
        raise ConfigurationError(
            f"subtask {sid!r} lists candidates {unknown!r} that are not in `candidates`; "
            f"add them there or drop them from the subtask.",
            field="subtasks.candidates",
            value=unknown,
        )
    return {
        "id": sid,
        "description": str(raw.get("description", "")),
        "required_skills": [str(s) for s in raw.get("required_skills", ())],
        "candidates": None if own is None else sorted(own),
    }


def _check_setup(
    candidates: Sequence[str], rounds_limit: object, bid_window: object, capacity: object
) -> None:
    if not candidates or len(set(candidates)) != len(candidates):
        dupes = sorted(c for c, n in Counter(candidates).items() if n > 1)
        raise ConfigurationError(
            f"candidates must be a non-empty list of unique agent ids (duplicates: {dupes!r}).",
            field="candidates",
            value=list(candidates),
        )
    if not isinstance(rounds_limit, int) or isinstance(rounds_limit, bool) or rounds_limit < 1:
        raise ConfigurationError(
            f"rounds_limit {rounds_limit!r} must be an integer >= 1 (default config: 5).",
            field="rounds_limit",
            value=rounds_limit,
        )
    if not _finite(bid_window) or bid_window <= 0:  # type: ignore[operator]
        raise ConfigurationError(
            f"bid_window {bid_window!r} must be a positive number of seconds.",
            field="bid_window",
            value=bid_window,
        )
    bad = {
        k: v
        for k, v in dict(capacity or {}).items()  # type: ignore[call-overload]
        if not isinstance(v, int) or isinstance(v, bool) or v < 0
    }
    if bad:
        raise ConfigurationError(
            f"capacity values must be integers >= 0, got {bad!r}.", field="capacity", value=bad
        )


def _no_award_reason(invited: int, refused: int, proposed: int, late: int) -> str:
    if proposed:
        return "capacity"
    if refused and refused == invited:
        return "all_refused"
    if refused:
        return "no_proposals"
    return "late_bids_only" if late else "no_bids"


class ContractNet:
    """One iterated Contract Net negotiation over several subtasks.

    The whole state is JSON-able (:meth:`to_dict` / :meth:`from_dict`) so it can live in a
    LangGraph checkpoint between the node that opens a round and the one that closes it.
    """

    def __init__(
        self,
        subtasks: Sequence[Mapping[str, Any]],
        candidates: Sequence[str],
        *,
        rounds_limit: int,
        bid_window: float,
        capacity: Mapping[str, int] | None = None,
        manager_id: str = "manager",
    ) -> None:
        """Set up a negotiation.

        Args:
            subtasks: mappings with ``id`` (or ``subtask_id``), optional ``description``,
                ``required_skills`` and ``candidates`` (a subset of ``candidates`` to invite).
            candidates: agent ids that may be invited.
            rounds_limit: how many rounds may be opened in total (>= 1).
            bid_window: seconds from opening a round to its deadline.
            capacity: agent -> how many subtasks it may hold at once (awarded and not yet
                reported). Agents not listed are unlimited.
            manager_id: the sender of cfp and award messages in the log.

        Raises:
            ConfigurationError: bad candidates, subtasks, limits or capacities.
        """
        candidates = list(candidates)
        _check_setup(candidates, rounds_limit, bid_window, capacity)
        pool = frozenset(candidates)
        records = [_subtask_record(s, pool) for s in subtasks]
        ids = [r["id"] for r in records]
        if not records or len(set(ids)) != len(ids):
            raise ConfigurationError(
                f"subtasks must be non-empty with unique ids, got {ids!r}.",
                field="subtasks",
                value=ids,
            )
        self.candidates = candidates
        self.rounds_limit = rounds_limit
        self.bid_window = float(bid_window)
        self.capacity = {str(k): int(v) for k, v in (capacity or {}).items()}
        self.manager_id = manager_id
        self._subtasks = {r["id"]: r for r in records}
        self._state: dict[str, dict[str, Any]] = {
            sid: {
                "status": "open",
                "agent": None,
                "score": None,
                "reason": "not_offered_yet",
                "failed_by": [],
                "result": None,
                "round": None,
            }
            for sid in ids
        }
        self.round = 0
        self.round_open = False
        self._cfps: dict[str, CallForProposals] = {}
        self._current: list[str] = []
        self._bids: dict[str, dict[str, Bid]] = {}
        self._late: dict[str, int] = {}
        self.counters = {"late": 0, "duplicate": 0, "unknown_cfp": 0, "not_invited": 0}
        self._messages: list[dict[str, Any]] = []
        self._invited: dict[str, frozenset[str]] = {}

    # -- protocol steps -------------------------------------------------------------------

    def open_round(self, now: float) -> list[CallForProposals]:
        """Open the next round: one cfp per subtask still without an agent.

        Args:
            now: the manager's clock, epoch seconds; the deadline is ``now + bid_window``.

        Returns:
            The cfps sent, in subtask order. Empty, and no round used, when no subtask can be
            offered: all are taken, or every candidate is full or has failed them.

        Raises:
            OrchestrationError: a round is already open, or ``rounds_limit`` rounds have run.
        """
        if self.round_open:
            raise OrchestrationError(
                f"round {self.round} is still open; call close_round() before open_round()."
            )
        waiting = [sid for sid, st in self._state.items() if st["status"] == "open"]
        if not waiting:
            return []
        if self.round >= self.rounds_limit:
            raise OrchestrationError(
                f"rounds_limit {self.rounds_limit} reached; check `done` before opening a round."
            )
        load = self._load()
        offers = [(sid, self._invitees(sid, load)) for sid in waiting]
        for sid, invited in offers:
            if not invited:
                self._state[sid]["reason"] = "no_candidates"
        if not any(invited for _, invited in offers):
            return []
        self.round += 1
        self.round_open = True
        cfps = [self._issue(sid, invited, now) for sid, invited in offers if invited]
        logger.debug("contract net round %d opened with %d cfps", self.round, len(cfps))
        return cfps

    def receive(self, bid: Bid, now: float) -> ReceiveStatus:
        """Take one ``propose`` / ``refuse`` answer.

        Args:
            bid: the answer.
            now: the manager's clock, epoch seconds (judges lateness).

        Returns:
            ``"accepted"``, ``"late"`` (after the deadline or after the round closed; ignored),
            ``"duplicate"`` (the agent already answered this cfp; ignored), ``"unknown_cfp"``
            or ``"not_invited"``.
        """
        cfp = self._cfps.get(bid.cfp_id)
        if cfp is None:
            self.counters["unknown_cfp"] += 1
            return "unknown_cfp"
        invited = self._invited.get(bid.cfp_id)  # None once the cfp's round has closed
        if bid.agent_id not in (invited if invited is not None else cfp.invited):
            self.counters["not_invited"] += 1
            return "not_invited"
        if invited is None or now > cfp.deadline:
            self.counters["late"] += 1
            if invited is not None:
                self._late[bid.cfp_id] += 1
            self._log(bid.kind, bid.agent_id, self.manager_id, cfp, now, late=True)
            return "late"
        answers = self._bids[bid.cfp_id]
        if bid.agent_id in answers:
            self.counters["duplicate"] += 1
            return "duplicate"
        answers[bid.agent_id] = bid
        if bid.kind == "propose":
            self._log(
                "propose", bid.agent_id, self.manager_id, cfp, now, score=bid.score, note=bid.note
            )
        else:
            self._log("refuse", bid.agent_id, self.manager_id, cfp, now, reason=bid.reason)
        return "accepted"

    @property
    def all_answered(self) -> bool:
        """True when every invited agent has answered every cfp of the open round."""
        return self.round_open and all(
            len(self._bids[c]) == len(self._invited[c]) for c in self._current
        )

    def close_round(self, now: float) -> list[Award]:
        """Close the open round and award each subtask to its best available proposal.

        Args:
            now: the manager's clock, epoch seconds (may be before the deadline, e.g. when
                :attr:`all_answered`).

        Returns:
            One award per cfp of the round, in subtask order (``agent_id`` None if not awarded).

        Raises:
            OrchestrationError: no round is open.
        """
        if not self.round_open:
            raise OrchestrationError("no round is open; call open_round() first.")
        order = {cid: i for i, cid in enumerate(self._current)}
        proposals = sorted(
            (-b.score, order[cid], b.agent_id, cid)
            for cid in self._current
            for b in self._bids[cid].values()
            if b.kind == "propose"
        )
        load = self._load()
        winners: dict[str, tuple[str, float]] = {}
        blocked: set[tuple[str, str]] = set()  # (cfp, agent): would have won but was full
        for neg_score, _, agent, cid in proposals:
            if cid in winners:
                continue
            if load.get(agent, 0) >= self.capacity.get(agent, math.inf):
                blocked.add((cid, agent))
                continue
            winners[cid] = (agent, -neg_score)
            load[agent] = load.get(agent, 0) + 1
        awards = [self._settle(cid, winners.get(cid), blocked, now) for cid in self._current]
        self.round_open = False
        self._current, self._bids, self._late, self._invited = [], {}, {}, {}
        return awards

    def report(
        self,
        subtask_id: str,
        agent_id: str,
        ok: bool,
        result: Any = None,
        *,
        now: float | None = None,
    ) -> None:
        """Record the winner's ``inform-done`` or ``failure``.

        Args:
            subtask_id: the subtask.
            agent_id: the agent it was awarded to.
            ok: True for inform-done; False for failure, which re-opens the subtask for the
                next round without this agent.
            result: the result (kept in the state, so keep it JSON-able) or failure reason.
            now: the manager's clock for the log, if known.

        Raises:
            OrchestrationError: the subtask is unknown or not currently awarded to ``agent_id``.
        """
        state = self._state.get(subtask_id)
        if state is None or state["status"] != "awarded" or state["agent"] != agent_id:
            held = None if state is None else (state["status"], state["agent"])
            raise OrchestrationError(
                f"cannot take a report on subtask {subtask_id!r} from {agent_id!r}: "
                f"its (status, agent) is {held!r}; only the awarded agent reports, once."
            )
        ref = {
            "subtask_id": subtask_id,
            "cfp_id": f"{subtask_id}#r{state['round']}",
            "round": state["round"],
        }
        if ok:
            state.update(status="done", result=result, reason="done")
            self._log("inform-done", agent_id, self.manager_id, ref, now)
            return
        state.update(status="open", agent=None, score=None, result=None, reason="failed")
        state["failed_by"].append(agent_id)
        self._log("failure", agent_id, self.manager_id, ref, now, reason=str(result or ""))
        logger.info("subtask %s failed at %s; re-opened", subtask_id, agent_id)

    # -- queries ---------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        """True when no round is open, no awarded subtask awaits its report, and either every
        subtask is done, ``rounds_limit`` rounds have run, or no open subtask has anyone left
        to invite."""
        if self.round_open:
            return False
        statuses = [st["status"] for st in self._state.values()]
        if "awarded" in statuses:
            return False
        if "open" not in statuses or self.round >= self.rounds_limit:
            return True
        load = self._load()
        return not any(self._invitees(sid, load) for sid in self.unassigned())

    def unassigned(self) -> list[str]:
        """Return the subtasks without an agent (never awarded, or failed), in subtask order."""
        return [sid for sid, st in self._state.items() if st["status"] == "open"]

    def unassigned_reasons(self) -> dict[str, str]:
        """Return subtask -> why it has no agent (the last round's :attr:`Award.reason`,
        ``"failed"``, ``"no_candidates"``, ``"awaiting_bids"`` or ``"not_offered_yet"``)."""
        return {sid: st["reason"] for sid, st in self._state.items() if st["status"] == "open"}

    def assignments(self) -> dict[str, str]:
        """Return subtask -> agent for subtasks awarded or done."""
        return {sid: st["agent"] for sid, st in self._state.items() if st["agent"] is not None}

    def results(self) -> dict[str, Any]:
        """Return subtask -> result for subtasks reported done."""
        return {sid: st["result"] for sid, st in self._state.items() if st["status"] == "done"}

    def messages(self) -> list[dict[str, Any]]:
        """Return the protocol log: one dict per message with its ``performative``."""
        return [{**m, "content": dict(m["content"])} for m in self._messages]

    # -- state ------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Return the whole negotiation state as a JSON-able dict."""
        return {
            "version": _STATE_VERSION,
            "subtasks": [dict(r) for r in self._subtasks.values()],
            "candidates": list(self.candidates),
            "rounds_limit": self.rounds_limit,
            "bid_window": self.bid_window,
            "capacity": dict(self.capacity),
            "manager_id": self.manager_id,
            "state": {
                sid: {**st, "failed_by": list(st["failed_by"])} for sid, st in self._state.items()
            },
            "round": self.round,
            "round_open": self.round_open,
            "cfps": [c.to_dict() for c in self._cfps.values()],
            "current": list(self._current),
            "bids": {cid: [b.to_dict() for b in bids.values()] for cid, bids in self._bids.items()},
            "late": dict(self._late),
            "counters": dict(self.counters),
            "messages": [{**m, "content": dict(m["content"])} for m in self._messages],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ContractNet:
        """Rebuild a negotiation from :meth:`to_dict` output.

        Raises:
            ConfigurationError: the state was written by an unknown format version.
        """
        if data.get("version") != _STATE_VERSION:
            raise ConfigurationError(
                f"contract net state version {data.get('version')!r} is not supported "
                f"(expected {_STATE_VERSION}); restart the negotiation.",
                field="version",
                value=data.get("version"),
            )
        net = cls(
            data["subtasks"],
            data["candidates"],
            rounds_limit=data["rounds_limit"],
            bid_window=data["bid_window"],
            capacity=data["capacity"],
            manager_id=data["manager_id"],
        )
        net._state = {
            sid: {**st, "failed_by": list(st["failed_by"])} for sid, st in data["state"].items()
        }
        net.round, net.round_open = data["round"], data["round_open"]
        net._cfps = {c["cfp_id"]: CallForProposals.from_dict(c) for c in data["cfps"]}
        net._current = list(data["current"])
        net._invited = {cid: frozenset(net._cfps[cid].invited) for cid in net._current}
        net._bids = {cid: {} for cid in net._current}
        for cid, bids in data["bids"].items():
            net._bids[cid] = {b["agent_id"]: Bid.from_dict(b) for b in bids}
        net._late = {cid: int(n) for cid, n in data["late"].items()}
        net.counters = {k: int(v) for k, v in data["counters"].items()}
        net._messages = [{**m, "content": dict(m["content"])} for m in data["messages"]]
        return net

    # -- internals --------------------------------------------------------------------------

    def _load(self) -> dict[str, int]:
        return dict(
            Counter(st["agent"] for st in self._state.values() if st["status"] == "awarded")
        )

    def _invitees(self, sid: str, load: Mapping[str, int]) -> tuple[str, ...]:
        own = self._subtasks[sid]["candidates"]
        pool = self.candidates if own is None else own
        failed = set(self._state[sid]["failed_by"])
        return tuple(
            sorted(
                a
                for a in pool
                if a not in failed and load.get(a, 0) < self.capacity.get(a, math.inf)
            )
        )

    def _issue(self, sid: str, invited: tuple[str, ...], now: float) -> CallForProposals:
        rec = self._subtasks[sid]
        cfp = CallForProposals(
            cfp_id=f"{sid}#r{self.round}",
            subtask_id=sid,
            description=rec["description"],
            required_skills=tuple(rec["required_skills"]),
            deadline=now + self.bid_window,
            round=self.round,
            invited=invited,
        )
        self._cfps[cfp.cfp_id] = cfp
        self._current.append(cfp.cfp_id)
        self._invited[cfp.cfp_id] = frozenset(invited)
        self._bids[cfp.cfp_id] = {}
        self._late[cfp.cfp_id] = 0
        self._state[sid]["reason"] = "awaiting_bids"
        for agent in invited:
            self._log("cfp", self.manager_id, agent, cfp, now, deadline=cfp.deadline)
        return cfp

    def _settle(
        self, cid: str, winner: tuple[str, float] | None, blocked: set[tuple[str, str]], now: float
    ) -> Award:
        cfp = self._cfps[cid]
        answers = self._bids[cid]
        proposers = sorted(a for a, b in answers.items() if b.kind == "propose")
        refused = tuple(sorted(a for a, b in answers.items() if b.kind == "refuse"))
        agent, score = winner if winner is not None else (None, 0.0)
        if agent is not None:
            self._log("accept-proposal", self.manager_id, agent, cfp, now, score=score)
        for other in proposers:
            if other != agent:
                why = "capacity" if (cid, other) in blocked else "outbid"
                self._log("reject-proposal", self.manager_id, other, cfp, now, reason=why)
        state = self._state[cfp.subtask_id]
        if agent is not None:
            state.update(
                status="awarded", agent=agent, score=score, reason="awarded", round=cfp.round
            )
            reason = "awarded"
        else:
            reason = _no_award_reason(
                len(cfp.invited), len(refused), len(proposers), self._late[cid]
            )
            state["reason"] = reason
        return Award(
            subtask_id=cfp.subtask_id,
            agent_id=agent,
            score=score,
            round=cfp.round,
            rejected=tuple(p for p in proposers if p != agent),
            refused=refused,
            late=self._late[cid],
            reason=reason,
        )

    def _log(
        self,
        performative: Performative,
        sender: str,
        receiver: str,
        ref: CallForProposals | Mapping[str, Any],
        at: float | None,
        **content: Any,
    ) -> None:
        if isinstance(ref, CallForProposals):
            cfp_id, subtask_id, rnd = ref.cfp_id, ref.subtask_id, ref.round
        else:
            cfp_id, subtask_id, rnd = ref["cfp_id"], ref["subtask_id"], ref["round"]
        self._messages.append(
            {
                "performative": performative,
                "sender": sender,
                "receiver": receiver,
                "cfp_id": cfp_id,
                "subtask_id": subtask_id,
                "round": rnd,
                "at": at,
                "content": content,
            }
        )
