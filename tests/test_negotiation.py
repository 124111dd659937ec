"""Tests for stellar_graph.negotiation: the iterated FIPA Contract Net state machine."""

from __future__ import annotations

import json
import sys
from collections import Counter

import pytest

from stellar_graph.errors import ConfigurationError, InvalidInputError, OrchestrationError
from stellar_graph.negotiation import Award, Bid, ContractNet


def _net(n_subtasks: int = 1, agents: tuple[str, ...] = ("a", "b", "c"), **kw) -> ContractNet:
    subtasks = [
        {"id": f"s{i}", "description": f"part {i}", "required_skills": ["x"]}
        for i in range(n_subtasks)
    ]
    kw.setdefault("rounds_limit", 3)
    kw.setdefault("bid_window", 10.0)
    return ContractNet(subtasks, list(agents), **kw)


def _propose(agent: str, cfp_id: str, score: float, at: float = 1.0) -> Bid:
    return Bid(agent, cfp_id, "propose", score, note=f"{agent} plan", sent_at=at)


def _refuse(agent: str, cfp_id: str, at: float = 1.0) -> Bid:
    return Bid(agent, cfp_id, "refuse", reason="busy", sent_at=at)


def test_award_goes_to_best_score_and_others_are_rejected() -> None:
    net = _net()
    [cfp] = net.open_round(now=0.0)
    assert (cfp.cfp_id, cfp.subtask_id, cfp.round, cfp.deadline) == ("s0#r1", "s0", 1, 10.0)
    assert cfp.invited == ("a", "b", "c")
    assert cfp.required_skills == ("x",)
    for agent, score in (("a", 0.2), ("b", 0.9), ("c", 0.5)):
        assert net.receive(_propose(agent, cfp.cfp_id, score), now=1.0) == "accepted"
    assert net.all_answered
    [award] = net.close_round(now=2.0)
    assert award == Award("s0", "b", 0.9, 1, ("a", "c"), (), 0, "awarded")
    assert net.assignments() == {"s0": "b"}
    assert net.unassigned() == []
    assert not net.done  # awaiting b's report
    net.report("s0", "b", ok=True, result={"text": "done"})
    assert net.done
    assert net.results() == {"s0": {"text": "done"}}


def test_equal_scores_break_ties_by_agent_id() -> None:
    net = _net(agents=("c", "b", "a"))
    [cfp] = net.open_round(now=0.0)
    for agent in ("c", "b", "a"):
        net.receive(_propose(agent, cfp.cfp_id, 0.7), now=1.0)
    [award] = net.close_round(now=2.0)
    assert (award.agent_id, award.rejected) == ("a", ("b", "c"))


def test_refusals_are_recorded_and_all_refused_goes_to_next_round() -> None:
    net = _net()
    [cfp] = net.open_round(now=0.0)
    net.receive(_refuse("a", cfp.cfp_id), now=1.0)
    net.receive(_refuse("b", cfp.cfp_id), now=1.0)
    net.receive(_propose("c", cfp.cfp_id, 0.1), now=1.0)
    [award] = net.close_round(now=10.0)
    assert (award.agent_id, award.refused, award.rejected) == ("c", ("a", "b"), ())

    net = _net()
    [cfp] = net.open_round(now=0.0)
    for agent in ("a", "b", "c"):
        net.receive(_refuse(agent, cfp.cfp_id), now=1.0)
    [award] = net.close_round(now=10.0)
    assert (award.agent_id, award.reason, award.refused) == (None, "all_refused", ("a", "b", "c"))
    assert net.unassigned_reasons() == {"s0": "all_refused"}
    assert not net.done
    [cfp2] = net.open_round(now=20.0)
    assert (cfp2.cfp_id, cfp2.round, cfp2.deadline) == ("s0#r2", 2, 30.0)


def test_late_bid_is_ignored_and_counted() -> None:
    net = _net()
    [cfp] = net.open_round(now=0.0)
    net.receive(_propose("a", cfp.cfp_id, 0.3), now=5.0)
    assert net.receive(_propose("b", cfp.cfp_id, 0.99, at=9.0), now=10.5) == "late"
    [award] = net.close_round(now=11.0)
    assert (award.agent_id, award.late, award.rejected) == ("a", 1, ())
    assert net.counters["late"] == 1
    # after the round closed, a straggler is still late (counted, never awarded)
    assert net.receive(_propose("c", cfp.cfp_id, 1.0), now=11.5) == "late"
    assert net.counters["late"] == 2
    late_log = [m for m in net.messages() if m["content"].get("late")]
    assert [(m["sender"], m["performative"]) for m in late_log] == [
        ("b", "propose"),
        ("c", "propose"),
    ]


def test_only_late_or_no_bids_leaves_subtask_open_with_reason() -> None:
    net = _net(n_subtasks=2)
    c0, c1 = net.open_round(now=0.0)
    net.receive(_propose("a", c0.cfp_id, 0.5), now=10.01)
    awards = net.close_round(now=10.01)
    assert [(a.agent_id, a.reason, a.late) for a in awards] == [
        (None, "late_bids_only", 1),
        (None, "no_bids", 0),
    ]
    net2 = _net()
    [cfp] = net2.open_round(now=0.0)
    net2.receive(_refuse("a", cfp.cfp_id), now=1.0)
    assert net2.close_round(now=10.0)[0].reason == "no_proposals"


def test_rounds_limit_leaves_subtasks_unassigned_with_reason() -> None:
    net = _net(n_subtasks=2, rounds_limit=2)
    c0, c1 = net.open_round(now=0.0)
    net.receive(_propose("a", c0.cfp_id, 0.5), now=1.0)
    for agent in ("a", "b", "c"):
        net.receive(_refuse(agent, c1.cfp_id), now=1.0)
    net.close_round(now=10.0)
    assert net.unassigned() == ["s1"]
    [again] = net.open_round(now=100.0)  # only the subtask nobody took is offered again
    assert again.cfp_id == "s1#r2"
    for agent in ("a", "b", "c"):
        net.receive(_refuse(agent, again.cfp_id), now=101.0)
    net.close_round(now=110.0)
    assert not net.done  # s0 still awaits its report
    net.report("s0", "a", ok=True)
    assert net.done
    assert net.round == 2
    assert net.unassigned() == ["s1"]
    assert net.unassigned_reasons() == {"s1": "all_refused"}
    with pytest.raises(OrchestrationError, match="rounds_limit 2 reached"):
        net.open_round(now=300.0)


def test_capacity_is_respected_with_deterministic_greedy() -> None:
    net = _net(n_subtasks=3, agents=("a", "b"), capacity={"a": 1})
    cfps = net.open_round(now=0.0)
    scores = {"a": (0.8, 0.9, 0.7), "b": (0.5, 0.4, 0.6)}
    for agent, row in scores.items():
        for cfp, score in zip(cfps, row, strict=True):
            net.receive(_propose(agent, cfp.cfp_id, score), now=1.0)
    awards = net.close_round(now=2.0)
    # a takes its best (s1, 0.9); s0 and s2 fall to b, whose capacity is unlimited
    assert [(w.subtask_id, w.agent_id, w.score) for w in awards] == [
        ("s0", "b", 0.5),
        ("s1", "a", 0.9),
        ("s2", "b", 0.6),
    ]
    rejects = [
        (m["subtask_id"], m["receiver"], m["content"]["reason"])
        for m in net.messages()
        if m["performative"] == "reject-proposal"
    ]
    assert rejects == [("s0", "a", "capacity"), ("s1", "b", "outbid"), ("s2", "a", "capacity")]


def test_full_agent_is_not_invited_and_capacity_blocks_award() -> None:
    net = _net(n_subtasks=2, agents=("a",), capacity={"a": 1})
    c0, c1 = net.open_round(now=0.0)
    net.receive(_propose("a", c0.cfp_id, 0.9), now=1.0)
    net.receive(_propose("a", c1.cfp_id, 0.8), now=1.0)
    awards = net.close_round(now=2.0)
    assert [(w.agent_id, w.reason) for w in awards] == [("a", "awarded"), (None, "capacity")]
    # a is full: nobody can be invited for s1, so no round is used and we wait for a's report
    assert net.open_round(now=3.0) == []
    assert net.round == 1
    assert net.unassigned_reasons() == {"s1": "no_candidates"}
    assert not net.done
    net.report("s0", "a", ok=True)
    [cfp] = net.open_round(now=4.0)
    assert (cfp.subtask_id, cfp.invited, cfp.round) == ("s1", ("a",), 2)


def test_failure_reopens_without_the_failed_agent() -> None:
    net = _net()
    [cfp] = net.open_round(now=0.0)
    net.receive(_propose("a", cfp.cfp_id, 0.9), now=1.0)
    net.receive(_propose("b", cfp.cfp_id, 0.5), now=1.0)
    net.close_round(now=2.0)
    net.report("s0", "a", ok=False, result="tool crashed")
    assert net.unassigned_reasons() == {"s0": "failed"}
    assert net.assignments() == {}
    assert not net.done
    [cfp2] = net.open_round(now=5.0)
    assert cfp2.invited == ("b", "c")
    net.receive(_propose("b", cfp2.cfp_id, 0.5), now=6.0)
    [award] = net.close_round(now=7.0)
    assert (award.agent_id, award.round) == ("b", 2)
    failure = [m for m in net.messages() if m["performative"] == "failure"]
    assert failure[0]["content"] == {"reason": "tool crashed"}
    assert failure[0]["cfp_id"] == "s0#r1"


def test_a_subtask_everyone_failed_ends_the_negotiation() -> None:
    net = _net(agents=("a",), rounds_limit=5)
    [cfp] = net.open_round(now=0.0)
    net.receive(_propose("a", cfp.cfp_id, 1.0), now=1.0)
    net.close_round(now=1.0)
    net.report("s0", "a", ok=False)
    assert net.done
    assert net.open_round(now=2.0) == []
    assert net.unassigned_reasons() == {"s0": "no_candidates"}


def test_message_count_is_3n_plus_1_per_subtask() -> None:
    agents = tuple(f"ag{i}" for i in range(5))
    net = _net(n_subtasks=2, agents=agents)
    cfps = net.open_round(now=0.0)
    for cfp in cfps:
        for i, agent in enumerate(agents):
            net.receive(_propose(agent, cfp.cfp_id, 0.1 * i), now=1.0)
    awards = net.close_round(now=2.0)
    for award in awards:
        net.report(award.subtask_id, award.agent_id, ok=True, result=award.subtask_id, now=3.0)
    n = len(agents)
    per_subtask = Counter(m["subtask_id"] for m in net.messages())
    assert per_subtask == {"s0": 3 * n + 1, "s1": 3 * n + 1}
    performatives = Counter(m["performative"] for m in net.messages() if m["subtask_id"] == "s0")
    assert performatives == {
        "cfp": n,
        "propose": n,
        "accept-proposal": 1,
        "reject-proposal": n - 1,
        "inform-done": 1,
    }
    first = net.messages()[0]
    assert first == {
        "performative": "cfp",
        "sender": "manager",
        "receiver": "ag0",
        "cfp_id": "s0#r1",
        "subtask_id": "s0",
        "round": 1,
        "at": 0.0,
        "content": {"deadline": 10.0},
    }


def test_receive_statuses() -> None:
    net = _net(n_subtasks=1, agents=("a", "b"))
    [cfp] = net.open_round(now=0.0)
    assert net.receive(_propose("a", "nope#r1", 1.0), now=1.0) == "unknown_cfp"
    assert net.receive(_propose("z", cfp.cfp_id, 1.0), now=1.0) == "not_invited"
    assert net.receive(_propose("a", cfp.cfp_id, 0.2), now=1.0) == "accepted"
    assert net.receive(_propose("a", cfp.cfp_id, 0.9), now=2.0) == "duplicate"
    assert net.counters == {"late": 0, "duplicate": 1, "unknown_cfp": 1, "not_invited": 1}
    [award] = net.close_round(now=3.0)
    assert award.score == 0.2  # the first answer counts


def test_subtask_candidates_restrict_invitations() -> None:
    subtasks = [{"subtask_id": "s0", "candidates": ["c", "a"]}, {"id": "s1", "candidates": []}]
    net = ContractNet(subtasks, ["a", "b", "c"], rounds_limit=2, bid_window=1.0)
    [cfp] = net.open_round(now=0.0)
    assert (cfp.subtask_id, cfp.invited) == ("s0", ("a", "c"))
    assert net.unassigned_reasons()["s1"] == "no_candidates"


def test_protocol_misuse_raises() -> None:
    net = _net()
    with pytest.raises(OrchestrationError, match="no round is open"):
        net.close_round(now=0.0)
    [cfp] = net.open_round(now=0.0)
    with pytest.raises(OrchestrationError, match="still open"):
        net.open_round(now=1.0)
    net.receive(_propose("a", cfp.cfp_id, 0.5), now=1.0)
    net.close_round(now=2.0)
    with pytest.raises(OrchestrationError, match="'s0' from 'b'"):
        net.report("s0", "b", ok=True)
    net.report("s0", "a", ok=True)
    with pytest.raises(OrchestrationError, match="only the awarded agent reports, once"):
        net.report("s0", "a", ok=True)
    with pytest.raises(OrchestrationError, match="'zz'"):
        net.report("zz", "a", ok=True)


def test_setup_validation() -> None:
    with pytest.raises(ConfigurationError, match="rounds_limit 0"):
        _net(rounds_limit=0)
    with pytest.raises(ConfigurationError, match="bid_window -1"):
        _net(bid_window=-1)
    with pytest.raises(ConfigurationError, match="duplicates: \\['a'\\]"):
        _net(agents=("a", "a"))
    with pytest.raises(ConfigurationError, match="capacity values"):
        _net(capacity={"a": -1})
    with pytest.raises(ConfigurationError, match="unique ids"):
        ContractNet([{"id": "s"}, {"id": "s"}], ["a"], rounds_limit=1, bid_window=1)
    with pytest.raises(ConfigurationError, match="not in `candidates`"):
        ContractNet([{"id": "s", "candidates": ["q"]}], ["a"], rounds_limit=1, bid_window=1)
    with pytest.raises(InvalidInputError, match="Bid.kind 'maybe'"):
        Bid("a", "s0#r1", "maybe", sent_at=0.0)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="Bid.score nan"):
        Bid("a", "s0#r1", "propose", float("nan"), sent_at=0.0)


def test_round_trip_through_json_mid_round_and_after() -> None:
    net = _net(n_subtasks=2, capacity={"a": 1})
    c0, c1 = net.open_round(now=0.0)
    net.receive(_propose("a", c0.cfp_id, 0.9), now=1.0)
    net.receive(_refuse("b", c0.cfp_id), now=1.0)
    net.receive(_propose("c", c1.cfp_id, 0.4, at=12.0), now=12.0)
    restored = ContractNet.from_dict(json.loads(json.dumps(net.to_dict())))
    assert restored.to_dict() == net.to_dict()
    for m in (net, restored):
        assert m.receive(_propose("a", c1.cfp_id, 0.7), now=2.0) == "accepted"
        assert m.receive(_propose("a", c1.cfp_id, 0.7), now=2.0) == "duplicate"
    assert net.close_round(now=10.0) == restored.close_round(now=10.0)
    net.report("s0", "a", ok=False, result="oops")
    restored = ContractNet.from_dict(json.loads(json.dumps(net.to_dict())))
    assert restored.to_dict() == net.to_dict()
    assert restored.open_round(now=20.0) == net.open_round(now=20.0)
    assert restored.messages() == net.messages()
    assert restored.unassigned_reasons() == net.unassigned_reasons()
    assert net.unassigned_reasons() == {"s0": "awaiting_bids", "s1": "awaiting_bids"}
    with pytest.raises(ConfigurationError, match="version"):
        ContractNet.from_dict({"version": 0})


def test_bench_protocols_runs_both_protocols_end_to_end(monkeypatch: pytest.MonkeyPatch) -> None:
    """Smoke test of tools/bench_protocols.py (no timing assertions: only that it runs)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "tools" / "bench_protocols.py"
    spec = importlib.util.spec_from_file_location("bench_protocols", path)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_protocols", bench)  # dataclasses look it up
    spec.loader.exec_module(bench)
    rows = bench.run([20], {20: 2})  # raises if the protocol and the bare loop disagree
    assert [(r.protocol, r.n) for r in rows] == [
        ("cnp", 20),
        ("vote", 20),
        ("cnp checkpoint", 20),
        ("vote checkpoint", 20),
    ]
    assert "cnp" in bench.render(rows)
