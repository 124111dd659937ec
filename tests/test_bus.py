"""Tests for stellar_graph.bus: ordering, bounds, TTL, acks, routing, validation, persistence."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import random
import signal
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from stellar_graph._bus_message import Message, _parse_fast, new_message_id, parse_message
from stellar_graph.bus import (
    PROTOCOL_FIELDS,
    AdvancedMessageBus,
    Envelope,
    QueueFullError,
    UnknownMessageError,
    UnknownRecipientError,
)
from stellar_graph.config import OrchestraConfig
from stellar_graph.errors import (
    ConfigurationError,
    DuplicateAgentError,
    InvalidInputError,
    OrchestrationError,
    UnknownAgentError,
)

SRC = Path(__file__).resolve().parents[1] / "src"


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_bus(agents: int = 3, **options: Any) -> AdvancedMessageBus:
    bus = AdvancedMessageBus(**options)
    for i in range(agents):
        bus.register(f"a{i}", agent_type="Worker")
    return bus


def msg(to: str | list[str] = "a0", prio: int = 5, **fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "sender": "tester",
        "recipients": [to] if isinstance(to, str) else to,
        "message_type": "note",
        "priority_level": prio,
        "content": {},
    }
    data.update(fields)
    return data


def ids(envelopes: list[Envelope]) -> list[str]:
    return [e.message_id for e in envelopes]


# -- the seed call and ordering ---------------------------------------------------------------


async def test_seed_emergency_broadcast_reaches_every_agent() -> None:
    bus = AdvancedMessageBus()
    bus.register("atlas-001", agent_type="AtlasAgent", groups=["research"])
    bus.register("nova-001", agent_type="NovaAgent")
    message_id = "11111111-2222-4333-8444-555555555555"
    returned = await bus.send_priority_message(
        {
            "message_id": message_id,
            "sender": "stellar-orchestra",
            "recipients": ["all-agents"],
            "message_type": "emergency",
            "priority_level": 10,
            "content": {"alert": "disk full"},
        }
    )
    assert returned == message_id
    got = await bus.receive("atlas-001", timeout=1)
    assert got is not None and got.content == {"alert": "disk full"}
    assert got.recipients == ("atlas-001", "nova-001") and got.targets == ("all-agents",)
    assert bus.receipts(message_id) == {"atlas-001": "delivered", "nova-001": "queued"}
    assert ids(bus.drain("nova-001")) == [message_id]
    assert bus.receipts(message_id) == {"atlas-001": "delivered", "nova-001": "delivered"}
    assert bus.metrics()["sent"] == 1 and bus.metrics()["delivered"] == 2
    await bus.close()


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.lists(st.integers(min_value=1, max_value=10), max_size=120))
def test_order_is_priority_then_fifo(priorities: list[int]) -> None:
    async def run() -> list[str]:
        bus = make_bus(1)
        for i, p in enumerate(priorities):
            await bus.send_priority_message(msg(prio=p, message_id=f"m{i}"))
        return ids(bus.drain("a0"))

    got = asyncio.run(run())
    expected = [f"m{i}" for i, _ in sorted(enumerate(priorities), key=lambda x: (-x[1], x[0]))]
    assert got == expected


async def test_receive_order_through_the_router_matches_drain_order() -> None:
    bus = make_bus(1)
    prios = [3, 9, 3, 1, 9, 10, 5, 3]
    for i, p in enumerate(prios):
        await bus.send_priority_message(msg(prio=p, message_id=f"m{i}"))
    await asyncio.sleep(0)  # the router moves everything into the inbox
    got = [(await bus.receive("a0", timeout=1)).message_id for _ in prios]  # type: ignore[union-attr]
    assert got == ["m5", "m1", "m4", "m6", "m0", "m2", "m7", "m3"]
    await bus.close()


async def test_fifo_within_one_priority_and_payloads_never_compared() -> None:
    bus = make_bus(1)
    for i in range(50):
        await bus.send_priority_message(msg(prio=7, message_id=f"m{i}", content={"i": i}))
    # Envelopes define no ordering: had a tie ever reached them, heapq would raise TypeError.
    with pytest.raises(TypeError):
        _ = bus._live["m0"] < bus._live["m1"]  # type: ignore[operator]
    assert ids(bus.drain("a0")) == [f"m{i}" for i in range(50)]


async def test_urgent_message_overtakes_a_routed_backlog() -> None:
    bus = make_bus(1, priority_queue_size=2000)
    for i in range(1000):
        await bus.send_priority_message(msg(prio=1 + i % 9, message_id=f"b{i}"))
    await asyncio.sleep(0)
    urgent = await bus.send_priority_message(msg(prio=10))
    first = await bus.receive("a0", timeout=1)
    assert first is not None and first.message_id == urgent
    await bus.close()


# -- bounded queue ----------------------------------------------------------------------------


async def test_full_queue_sheds_lowest_newest_then_refuses_without_losing_anything() -> None:
    bus = make_bus(1, priority_queue_size=5)
    for name, p in [("p3a", 3), ("p5", 5), ("p3b", 3), ("p7", 7), ("p3c", 3)]:
        await bus.send_priority_message(msg(prio=p, message_id=name))
    await bus.send_priority_message(msg(prio=4, message_id="p4"))
    assert bus.queue_depth == 5
    assert bus.receipts("p3c") == {"a0": "dead-letter"}
    [dead] = bus.dead_letters()
    assert dead["reason"] == "shed" and dead["message"]["message_id"] == "p3c"
    assert dead["recipients"] == ["a0"]
    with pytest.raises(QueueFullError) as err:
        await bus.send_priority_message(msg(prio=3, message_id="late"))
    assert err.value.queue_size == 5 and err.value.lowest_queued == 3
    assert "priority_queue_size=5" in str(err.value) and "'late'" in str(err.value)
    assert isinstance(err.value, OrchestrationError)
    m = bus.metrics()
    assert (m["shed"], m["refused"], m["dead_lettered"], m["queue_depth"]) == (1, 1, 1, 5)
    assert ids(bus.drain("a0")) == ["p7", "p5", "p4", "p3a", "p3b"]
    with pytest.raises(UnknownMessageError):
        bus.receipts("late")


async def test_refused_when_equal_to_lowest_and_room_after_receiving() -> None:
    bus = make_bus(1, priority_queue_size=2)
    await bus.send_priority_message(msg(prio=5, message_id="x"))
    await bus.send_priority_message(msg(prio=5, message_id="y"))
    with pytest.raises(QueueFullError):
        await bus.send_priority_message(msg(prio=5, message_id="z"))
    assert ids(bus.drain("a0", 1)) == ["x"]
    await bus.send_priority_message(msg(prio=5, message_id="z"))
    assert ids(bus.drain("a0")) == ["y", "z"]


async def test_shedding_a_broadcast_dead_letters_only_its_waiting_recipients() -> None:
    bus = make_bus(3, priority_queue_size=1)
    await bus.send_priority_message(msg(["all-agents"], prio=2, message_id="b"))
    assert ids(bus.drain("a0")) == ["b"]
    await bus.send_priority_message(msg("a1", prio=9, message_id="u"))
    assert bus.receipts("b") == {"a0": "delivered", "a1": "dead-letter", "a2": "dead-letter"}
    assert bus.dead_letters()[0]["recipients"] == ["a1", "a2"]
    assert bus.metrics()["dead_lettered"] == 2 and bus.metrics()["shed"] == 1


# -- TTL --------------------------------------------------------------------------------------


async def test_expired_messages_are_dropped_at_dequeue_and_counted() -> None:
    clock = FakeClock()
    bus = make_bus(1, clock=clock)
    await bus.send_priority_message(msg(prio=9, message_id="short", ttl_seconds=10))
    await bus.send_priority_message(msg(prio=1, message_id="forever"))
    await bus.send_priority_message(msg(prio=5, message_id="long", ttl_seconds=60))
    clock.advance(10)  # exactly at the deadline counts as expired
    assert ids(bus.drain("a0")) == ["long", "forever"]
    assert bus.receipts("short") == {"a0": "expired"}
    assert bus.metrics()["expired"] == 1 and bus.queue_depth == 0


async def test_ttl_is_checked_again_after_routing() -> None:
    clock = FakeClock()
    bus = make_bus(2, clock=clock)
    await bus.send_priority_message(msg(["a0", "a1"], message_id="t", ttl_seconds=5))
    await asyncio.sleep(0)  # routed into both inboxes while still fresh
    assert ids(bus.drain("a0")) == ["t"]
    clock.advance(5.5)
    assert bus.drain("a1") == []
    assert bus.receipts("t") == {"a0": "delivered", "a1": "expired"}
    await bus.close()


async def test_a_full_queue_first_drops_expired_messages() -> None:
    clock = FakeClock()
    bus = make_bus(1, clock=clock, priority_queue_size=2)
    await bus.send_priority_message(msg(prio=9, message_id="old1", ttl_seconds=1))
    await bus.send_priority_message(msg(prio=9, message_id="old2", ttl_seconds=1))
    clock.advance(2)
    await bus.send_priority_message(msg(prio=1, message_id="new"))  # no shed, no refusal
    assert bus.metrics()["expired"] == 2 and bus.metrics()["shed"] == 0
    assert ids(bus.drain("a0")) == ["new"]


# -- acknowledgements -------------------------------------------------------------------------


async def test_unacked_message_is_redelivered_then_dead_lettered() -> None:
    clock = FakeClock()
    bus = make_bus(1, clock=clock, ack_timeout=5, max_attempts=3)
    await bus.send_priority_message(msg(message_id="q", requires_ack=True))
    for _attempt in range(3):
        assert ids(bus.drain("a0")) == ["q"]
        assert bus.drain("a0") == []
        clock.advance(4.9)
        assert bus.poll_timeouts() == 0
        clock.advance(0.1)
    assert bus.drain("a0") == []
    assert bus.receipts("q") == {"a0": "dead-letter"}
    [dead] = bus.dead_letters()
    assert dead["reason"] == "ack timeout after 3 attempts" and dead["recipients"] == ["a0"]
    m = bus.metrics()
    assert (m["delivered"], m["redelivered"], m["dead_lettered"], m["acked"]) == (3, 2, 1, 0)
    assert bus.ack("a0", "q") is False  # too late


async def test_ack_stops_redelivery_and_is_idempotent() -> None:
    clock = FakeClock()
    bus = make_bus(2, clock=clock, ack_timeout=5)
    await bus.send_priority_message(msg(["a0", "a1"], message_id="q", requires_ack=True))
    assert ids(bus.drain("a0")) == ["q"] and ids(bus.drain("a1")) == ["q"]
    assert bus.metrics()["in_flight"] == 2
    assert bus.ack("a0", "q") is True
    assert bus.ack("a0", "q") is False
    clock.advance(5)
    assert bus.drain("a0") == [] and ids(bus.drain("a1")) == ["q"]
    assert bus.receipts("q") == {"a0": "acked", "a1": "delivered"}
    assert bus.ack("a1", "q") is True
    assert bus.receipts("q") == {"a0": "acked", "a1": "acked"}  # kept after finishing
    assert bus.metrics()["acked"] == 2 and bus.metrics()["in_flight"] == 0


async def test_late_ack_cancels_a_pending_redelivery() -> None:
    clock = FakeClock()
    bus = make_bus(1, clock=clock, ack_timeout=5)
    await bus.send_priority_message(msg(message_id="q", requires_ack=True))
    bus.drain("a0")
    clock.advance(5)
    assert bus.poll_timeouts() == 1 and bus.queue_depth == 1
    assert bus.ack("a0", "q") is True
    assert bus.queue_depth == 0 and bus.drain("a0") == []


async def test_ack_errors_and_non_ack_messages() -> None:
    bus = make_bus(2)
    await bus.send_priority_message(msg(message_id="plain"))
    await bus.send_priority_message(msg(message_id="qos", requires_ack=True))
    with pytest.raises(UnknownMessageError, match="'nope'"):
        bus.ack("a0", "nope")
    with pytest.raises(InvalidInputError, match="'a1' is not a recipient"):
        bus.ack("a1", "qos")
    assert bus.ack("a0", "qos") is False  # not delivered yet
    bus.drain("a0")
    assert bus.ack("a0", "plain") is False  # nothing to acknowledge
    assert bus.receipts("plain") == {"a0": "delivered"}


async def test_loop_timer_redelivers_without_polling() -> None:
    bus = make_bus(1, ack_timeout=0.02)
    await bus.send_priority_message(msg(message_id="q", requires_ack=True))
    first = await bus.receive("a0", timeout=2)
    second = await bus.receive("a0", timeout=2)  # woken by the redelivery timer
    assert first is second and second is not None and second.message_id == "q"
    assert bus.metrics()["redelivered"] == 1
    assert bus.ack("a0", "q") is True
    await bus.close()


# -- broadcasts and receipts ------------------------------------------------------------------


async def test_broadcast_is_routed_in_batches_and_yields_to_urgent_traffic() -> None:
    bus = make_bus(120, broadcast_batch_size=50)
    await bus.send_priority_message(msg(["all-agents"], prio=3, message_id="b"))

    def routed() -> int:
        return sum(1 for box in bus._inboxes.values() if box.heap)

    await asyncio.sleep(0)
    assert routed() == 50
    await bus.send_priority_message(msg("a119", prio=9, message_id="u"))
    await asyncio.sleep(0)  # the urgent message goes before the broadcast's next batch
    assert routed() == 1 + 50 + 50  # 'u' first, then the broadcast's next batch
    await asyncio.sleep(0)
    assert routed() == 120
    assert ids(bus.drain("a119")) == ["u", "b"]
    receipts = bus.receipts("b")
    assert len(receipts) == 120 and receipts["a119"] == "delivered"
    assert sum(s == "queued" for s in receipts.values()) == 119
    await bus.close()


async def test_receipts_track_every_state() -> None:
    clock = FakeClock()
    bus = make_bus(4, clock=clock, ack_timeout=1, max_attempts=1)
    await bus.send_priority_message(
        msg(["a0", "a1", "a2", "a3"], message_id="m", requires_ack=True, ttl_seconds=5)
    )
    bus.drain("a0")
    bus.ack("a0", "m")
    bus.drain("a1")
    clock.advance(1)
    bus.poll_timeouts()  # a1: 1 attempt allowed -> dead letter
    clock.advance(5)
    bus.drain("a2")  # expired
    assert bus.receipts("m") == {
        "a0": "acked",
        "a1": "dead-letter",
        "a2": "expired",
        "a3": "queued",
    }


async def test_receipt_history_is_bounded() -> None:
    bus = make_bus(1, receipt_history=3)
    for i in range(5):
        await bus.send_priority_message(msg(message_id=f"m{i}"))
    bus.drain("a0")
    assert bus.receipts("m4") == {"a0": "delivered"}
    with pytest.raises(UnknownMessageError, match="receipt_history"):
        bus.receipts("m0")


# -- recipients -------------------------------------------------------------------------------


async def test_recipient_resolution() -> None:
    bus = AdvancedMessageBus()
    bus.register("atlas-1", agent_type="AtlasAgent", groups=["research"])
    bus.register("atlas-2", agent_type="AtlasAgent")
    bus.register("nova-1", agent_type="NovaAgent", groups=["research", "ops"])
    bus.add_to_group("atlas-2", "ops")
    assert bus.resolve(["all-agents"]) == ("atlas-1", "atlas-2", "nova-1")
    assert bus.resolve(["AtlasAgent"]) == ("atlas-1", "atlas-2")
    assert bus.resolve(["type:NovaAgent"]) == ("nova-1",)
    assert bus.resolve(["research"]) == ("atlas-1", "nova-1")
    assert bus.resolve(["group:ops"]) == ("nova-1", "atlas-2")
    assert bus.resolve(["agent:atlas-2", "atlas-1", "AtlasAgent"]) == ("atlas-2", "atlas-1")
    bus.remove_from_group("atlas-2", "ops")
    assert bus.resolve(["ops"]) == ("nova-1",)
    mid = await bus.send_priority_message(msg(["research", "type:AtlasAgent"]))
    assert bus.receipts(mid) == dict.fromkeys(["atlas-1", "nova-1", "atlas-2"], "queued")


async def test_unknown_and_ambiguous_recipients_are_clear_errors() -> None:
    bus = make_bus(2)
    bus.add_to_group("a0", "research")
    with pytest.raises(UnknownRecipientError) as err:
        await bus.send_priority_message(msg("reserch"))
    text = str(err.value)
    assert "'reserch'" in text and "did you mean 'group:research'" in text
    assert "'a0'" in text and "'type:Worker'" in text and "'all-agents'" in text
    assert isinstance(err.value, UnknownAgentError) and isinstance(err.value, KeyError)
    with pytest.raises(UnknownRecipientError, match="'type:Nope'"):
        bus.resolve(["type:Nope"])
    bus.add_to_group("a1", "a0")  # a group named like an agent id
    with pytest.raises(InvalidInputError, match="ambiguous.*'agent:a0' or 'group:a0'"):
        bus.resolve(["a0"])
    assert bus.resolve(["agent:a0"]) == ("a0",) and bus.resolve(["group:a0"]) == ("a1",)
    with pytest.raises(UnknownRecipientError, match="no agent is registered"):
        AdvancedMessageBus().resolve(["all-agents"])
    assert bus.queue_depth == 0


def test_registration_rules() -> None:
    bus = AdvancedMessageBus()
    bus.register("a", agent_type="T", groups=["g1"])
    bus.register("a", agent_type="T", groups=["g2"])  # same type: groups merge
    assert bus.agents() == [{"agent_id": "a", "agent_type": "T", "groups": ["g1", "g2"]}]
    with pytest.raises(DuplicateAgentError):
        bus.register("a", agent_type="Other")
    for bad in ["all-agents", "type:x", "group:y", "", 5]:
        with pytest.raises(InvalidInputError, match="agent_id"):
            bus.register(bad)  # type: ignore[arg-type]
    with pytest.raises(UnknownAgentError):
        bus.unregister("ghost")
    with pytest.raises(UnknownAgentError):
        bus.drain("ghost")


async def test_unregister_dead_letters_waiting_and_unacked_messages() -> None:
    bus = make_bus(2)
    await bus.send_priority_message(msg(["a0", "a1"], message_id="both"))
    await bus.send_priority_message(msg("a0", message_id="qos", requires_ack=True))
    await bus.send_priority_message(msg("a0", message_id="plain", prio=1))
    assert ids(bus.drain("a0", 2)) == ["both", "qos"]
    bus.unregister("a0")
    assert bus.receipts("qos") == {"a0": "dead-letter"}
    assert bus.receipts("plain") == {"a0": "dead-letter"}
    assert bus.receipts("both") == {"a0": "delivered", "a1": "queued"}
    assert [d["reason"] for d in bus.dead_letters()] == ["recipient unregistered"] * 2
    with pytest.raises(UnknownRecipientError):
        await bus.send_priority_message(msg("a0"))


async def test_unregister_wakes_a_waiting_receiver_with_an_error() -> None:
    bus = make_bus(1)
    waiter = asyncio.create_task(bus.receive("a0"))
    await asyncio.sleep(0)
    bus.unregister("a0")
    with pytest.raises(UnknownAgentError):
        await waiter


async def test_receive_timeout_returns_none() -> None:
    bus = make_bus(1)
    assert await bus.receive("a0", timeout=0.01) is None
    assert not bus._inboxes["a0"].waiters  # the abandoned waiter is cleaned up
    await bus.send_priority_message(msg(message_id="x"))
    got = await bus.receive("a0", timeout=1)
    assert got is not None and got.message_id == "x"
    await bus.close()


# -- validation -------------------------------------------------------------------------------

VALID_CONTENT: dict[str, dict[str, Any]] = {
    "cfp": {"subtask_id": "s1", "deadline": 1700000000.0},
    "propose": {"cfp_id": "s1#r1", "score": 0.8, "plan": "..."},
    "refuse": {"cfp_id": "s1#r1", "reason": "busy"},
    "accept-proposal": {"cfp_id": "s1#r1"},
    "reject-proposal": {"cfp_id": "s1#r1"},
    "inform-done": {"cfp_id": "s1#r1", "result": {"ok": True}},
    "failure": {"cfp_id": "s1#r1", "reason": "crashed"},
    "proposal": {"proposal_id": "p1", "description": "ship it?"},
    "vote": {"proposal_id": "p1", "choice": "yes", "reason": "tests pass"},
    "result": {"proposal_id": "p1", "outcome": None},
}


@pytest.mark.parametrize("message_type", sorted(PROTOCOL_FIELDS))
async def test_protocol_messages_need_their_content_keys(message_type: str) -> None:
    assert set(VALID_CONTENT) == set(PROTOCOL_FIELDS)
    bus = make_bus(1)
    await bus.send_priority_message(
        msg(message_type=message_type, content=VALID_CONTENT[message_type])
    )
    for missing in PROTOCOL_FIELDS[message_type]:
        content = {k: v for k, v in VALID_CONTENT[message_type].items() if k != missing}
        with pytest.raises(InvalidInputError) as err:
            await bus.send_priority_message(msg(message_type=message_type, content=content))
        assert f"missing ['{missing}']" in str(err.value)
        assert err.value.errors[0]["field"] == "content"
    with pytest.raises(InvalidInputError, match="needs a dict content"):
        await bus.send_priority_message(msg(message_type=message_type, content=["x"]))
    assert bus.queue_depth == 1


@pytest.mark.parametrize(
    ("message_type", "content", "needle"),
    [
        (
            "propose",
            {"cfp_id": "c", "score": "high"},
            "content['score']='high' must be a finite number",
        ),
        ("propose", {"cfp_id": "c", "score": math.nan}, "JSON-serialisable"),
        ("propose", {"cfp_id": "c", "score": True}, "must be a finite number"),
        ("refuse", {"cfp_id": "", "reason": "x"}, "content['cfp_id']='' must be a non-empty id"),
        ("cfp", {"subtask_id": "s", "deadline": [1]}, "epoch seconds or an ISO time"),
        ("vote", {"proposal_id": 7, "choice": "a", "reason": ""}, "content['proposal_id']=7"),
    ],
)
async def test_protocol_field_types(
    message_type: str, content: dict[str, Any], needle: str
) -> None:
    bus = make_bus(1)
    with pytest.raises(InvalidInputError) as err:
        await bus.send_priority_message(msg(message_type=message_type, content=content))
    assert needle in str(err.value)


BAD_INPUTS: list[tuple[str, dict[str, Any], type[Exception], str]] = [
    ("priority 0", {"priority_level": 0}, InvalidInputError, "`priority_level`=0"),
    ("priority 11", {"priority_level": 11}, InvalidInputError, "from 1 (lowest) to 10"),
    ("priority str", {"priority_level": "5"}, InvalidInputError, "`priority_level`='5'"),
    ("priority bool", {"priority_level": True}, InvalidInputError, "`priority_level`=True"),
    ("unknown recipient", {"recipients": ["zed"]}, UnknownRecipientError, "'zed'"),
    ("empty recipients", {"recipients": []}, InvalidInputError, "`recipients`=[]"),
    ("recipients str", {"recipients": "a0"}, InvalidInputError, "non-empty list"),
    ("content set", {"content": {"s": {1, 2}}}, InvalidInputError, "type set is not JSON"),
    ("content object", {"content": object()}, InvalidInputError, "JSON-serialisable"),
    ("content nan", {"content": {"x": math.inf}}, InvalidInputError, "JSON-serialisable"),
    (
        "content too big",
        {"content": {"blob": "x" * 200}},
        InvalidInputError,
        "over the limit of 128 bytes",
    ),
    ("missing sender", {"sender": None}, InvalidInputError, "`sender`=None"),
    ("typo field", {"priorty": 5}, InvalidInputError, "`priorty`=5: unknown field"),
    ("bad ttl", {"ttl_seconds": -1}, InvalidInputError, "`ttl_seconds`=-1"),
    ("bad ack", {"requires_ack": "yes"}, InvalidInputError, "`requires_ack`='yes'"),
    ("duplicate id", {"message_id": "keep-1"}, InvalidInputError, "'keep-1' is already queued"),
]


@pytest.mark.parametrize(
    ("case", "patch", "error", "needle"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS]
)
async def test_bad_inputs_fail_clearly_and_lose_nothing(
    case: str, patch: dict[str, Any], error: type[Exception], needle: str
) -> None:
    bus = make_bus(1, max_content_bytes=128)
    for i in range(3):
        await bus.send_priority_message(msg(message_id=f"keep-{i}", prio=2 + i))
    data = {**msg(), **patch}
    if patch.get("sender", "x") is None:
        del data["sender"]
        needle = "`sender`"
    with pytest.raises(error) as err:
        await bus.send_priority_message(data)
    assert needle in str(err.value), str(err.value)
    assert "Fix" in str(err.value) or "; " in str(err.value) or "add it" in str(err.value)
    assert bus.queue_depth == 3 and bus.metrics()["sent"] == 3
    assert ids(bus.drain("a0")) == ["keep-2", "keep-1", "keep-0"]


async def test_content_size_counts_utf8_bytes_of_the_json() -> None:
    bus = make_bus(1, max_content_bytes=20)
    await bus.send_priority_message(msg(content={"t": "é" * 6}))  # {"t":"éééééé"} = 20 bytes
    with pytest.raises(InvalidInputError, match="21 bytes as JSON"):
        await bus.send_priority_message(msg(content={"t": "é" * 6 + "x"}))


async def test_message_model_and_send_shorthand() -> None:
    bus = make_bus(1)
    model = Message(sender="s", recipients=["a0"], message_type="note", content={"k": 1})
    assert await bus.send_priority_message(model) == model.message_id
    mid = await bus.send("s", "a0", "note", {"k": 2}, priority_level=9, conversation_id="c1")
    got = bus.drain("a0")
    assert ids(got) == [mid, model.message_id]
    assert got[0].conversation_id == "c1" and got[0].priority_level == 9
    again = got[0].to_message()
    assert again.content == {"k": 2} and again.created_at == got[0].created_at
    assert Message.model_validate(got[0].to_dict()).message_id == mid


_id = st.text(min_size=1, max_size=4)
_valid: dict[str, st.SearchStrategy[Any]] = {
    "message_id": _id,
    "priority_level": st.integers(1, 10),
    "content": st.dictionaries(
        st.sampled_from(["cfp_id", "score", "x"]),
        st.one_of(st.text(max_size=3), st.floats(), st.integers()),
    ),
    "ttl_seconds": st.one_of(st.none(), st.floats(0.01, 1e6), st.integers(1, 9)),
    "requires_ack": st.booleans(),
    "conversation_id": st.one_of(st.none(), _id),
}
_bad_text = st.sampled_from(["", 7, None, b"ab", "x" * 300])
_invalid: dict[str, st.SearchStrategy[Any]] = {
    "sender": _bad_text,
    "recipients": st.sampled_from([[], ("a0",), "a0", [""], ["a", 3]]),
    "message_type": _bad_text,
    "message_id": _bad_text,
    "priority_level": st.sampled_from([0, 11, True, 5.0, "5"]),
    "content": st.sampled_from([{"x": "y" * 70}, {"x": math.nan}, {1, 2}]),
    "ttl_seconds": st.sampled_from([0, -1.0, math.nan, math.inf, True, "3"]),
    "requires_ack": st.sampled_from([0, 1, None, "true"]),
    "conversation_id": _bad_text,
    "bogus": st.integers(),
    "created_at": st.just("2024-01-01T00:00:00Z"),
}


@st.composite
def _messages(draw: st.DrawFn) -> dict[str, Any]:
    data: dict[str, Any] = {
        "sender": draw(_id),
        "recipients": draw(st.lists(_id, min_size=1, max_size=3)),
        "message_type": draw(st.sampled_from(["note", "note", *sorted(PROTOCOL_FIELDS)])),
    }
    for name in draw(st.sets(st.sampled_from(sorted(_valid)))):
        data[name] = draw(_valid[name])
    for name in draw(st.lists(st.sampled_from(sorted(_invalid)), max_size=2)):
        data[name] = draw(_invalid[name])
    for name in draw(
        st.sets(st.sampled_from(["sender", "recipients", "message_type"]), max_size=1)
    ):
        del data[name]
    return data


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(_messages())
def test_fast_path_agrees_with_the_pydantic_model(data: dict[str, Any]) -> None:
    fast = _parse_fast(data, 64)
    try:
        model = Message.model_validate(data, context={"max_content_bytes": 64})
    except ValidationError:
        assert fast is None
        return
    if fast is None:
        # The fast path only defers on inputs it does not handle itself.
        assert "created_at" in data
        return
    env = fast[0]
    assert env.sender == model.sender and list(env.targets) == model.recipients
    assert env.message_type == model.message_type and env.priority_level == model.priority_level
    assert env.content == model.content and env.ttl_seconds == model.ttl_seconds
    assert env.requires_ack is model.requires_ack and env.conversation_id == model.conversation_id
    if "message_id" in data:
        assert env.message_id == model.message_id


def test_message_ids_are_uuid4_and_ignore_the_global_seed() -> None:
    state = random.getstate()
    try:
        random.seed(0)
        first = new_message_id()
        random.seed(0)
        second = new_message_id()
    finally:
        random.setstate(state)
    assert first != second
    parsed = uuid.UUID(first)
    assert parsed.version == 4 and str(parsed) == first


def test_parse_message_uses_the_bus_limit_for_prebuilt_models() -> None:
    model = Message(sender="s", recipients=["a"], message_type="n", content={"x": "y" * 50})
    assert parse_message(model, 1000)[0].message_id == model.message_id
    with pytest.raises(InvalidInputError, match="over the limit of 10 bytes"):
        parse_message(model, 10)


# -- subscriptions ----------------------------------------------------------------------------


async def test_subscriptions_filter_and_survive_raising_handlers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = make_bus(1)
    seen: list[str] = []
    async_seen: list[str] = []

    def boom(env: Envelope) -> None:
        raise RuntimeError("handler bug")

    async def async_boom(env: Envelope) -> None:
        raise ValueError("async handler bug")

    async def async_ok(env: Envelope) -> None:
        async_seen.append(env.message_id)

    token = bus.subscribe(lambda e: seen.append(e.message_id), message_types=["vote"])
    bus.subscribe(boom)
    bus.subscribe(async_boom, senders="tester")
    bus.subscribe(async_ok, senders=["someone-else"])
    with caplog.at_level(logging.WARNING, logger="stellar_graph"):
        vote = VALID_CONTENT["vote"]
        await bus.send_priority_message(msg(message_type="vote", content=vote, message_id="v1"))
        await bus.send_priority_message(msg(message_id="n1"))
        await bus.send_priority_message(msg(message_id="n2", sender="someone-else"))
        got = [await bus.receive("a0", timeout=1) for _ in range(3)]
        await asyncio.gather(*bus._tasks, return_exceptions=True)  # let async handlers finish
    assert [g.message_id for g in got if g] == ["v1", "n1", "n2"]
    assert seen == ["v1"] and async_seen == ["n2"]
    assert bus.metrics()["handler_errors"] == 3 + 2  # boom x3, async_boom x2
    assert sum("handler bug" in r.getMessage() for r in caplog.records) == 5
    assert all(r.levelno == logging.WARNING for r in caplog.records)
    assert bus.unsubscribe(token) is True and bus.unsubscribe(token) is False
    await bus.send_priority_message(msg(message_type="vote", content=vote, message_id="v2"))
    bus.drain("a0")
    assert seen == ["v1"]
    with pytest.raises(InvalidInputError, match="callable"):
        bus.subscribe("not a function")  # type: ignore[arg-type]
    await bus.close()


# -- snapshot / restore -----------------------------------------------------------------------


async def test_snapshot_restore_round_trip() -> None:
    clock = FakeClock()
    bus = make_bus(3, clock=clock, ack_timeout=10, priority_queue_size=4)
    bus.add_to_group("a2", "team")
    await bus.send_priority_message(msg("a0", prio=4, message_id="pending", content={"n": 1}))
    await bus.send_priority_message(msg("a1", message_id="inflight", requires_ack=True))
    await bus.send_priority_message(msg(["all-agents"], prio=6, message_id="bcast", ttl_seconds=30))
    await bus.send_priority_message(msg("a2", prio=1, message_id="victim"))
    await bus.send_priority_message(msg("a2", prio=2, message_id="winner"))  # sheds 'victim'
    assert ids(bus.drain("a1")) == ["bcast", "inflight"]
    clock.advance(10)
    bus.poll_timeouts()
    assert ids(bus.drain("a1")) == ["inflight"]  # second delivery, still unacked
    state = json.loads(json.dumps(bus.snapshot()))  # must be plain JSON

    clock2 = FakeClock()
    fresh = AdvancedMessageBus(clock=clock2, ack_timeout=10, max_attempts=3)
    fresh.restore(state)
    assert fresh.agents() == bus.agents()
    assert fresh.receipts("bcast") == {"a0": "queued", "a1": "delivered", "a2": "queued"}
    assert fresh.receipts("inflight") == {"a1": "queued"}  # in flight -> delivered again
    assert [d["message"]["message_id"] for d in fresh.dead_letters()] == ["victim"]
    m = fresh.metrics()
    assert (m["sent"], m["shed"], m["redelivered"], m["recovered"]) == (5, 1, 2, 4)
    assert ids(fresh.drain("a0")) == ["bcast", "pending"]
    assert ids(fresh.drain("a1")) == ["inflight"]
    assert fresh.ack("a1", "inflight") is True
    clock2.advance(29)
    assert ids(fresh.drain("a2")) == ["winner"]  # bcast expired: 30 s TTL, 10 s already used
    assert fresh.receipts("bcast")["a2"] == "expired"
    new_id = await fresh.send_priority_message(msg("a0"))
    assert fresh.drain("a0")[0].message_id == new_id
    with pytest.raises(ConfigurationError, match="empty bus"):
        bus.restore(state)
    with pytest.raises(ConfigurationError, match="format"):
        AdvancedMessageBus().restore({"format": "other"})


async def test_snapshot_attempts_survive_restore() -> None:
    clock = FakeClock()
    bus = make_bus(1, clock=clock, ack_timeout=1, max_attempts=2)
    await bus.send_priority_message(msg(message_id="q", requires_ack=True))
    bus.drain("a0")
    clock.advance(1)
    bus.poll_timeouts()
    bus.drain("a0")  # attempt 2 of 2, in flight
    fresh = AdvancedMessageBus(max_attempts=2)
    fresh.restore(bus.snapshot())
    assert fresh.receipts("q") == {"a0": "dead-letter"}
    assert fresh.dead_letters()[-1]["reason"] == "no ack after 2 attempts (bus restarted)"


# -- durable mode -----------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def where(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """Where a durable bus keeps its state: a SQLite file, or a PostgreSQL database (no file)."""
    if request.param == "sqlite":
        return {"path": str(tmp_path / "bus.sqlite"), "name": "orchestra"}
    return {"database_url": request.getfixturevalue("postgres_url"), "name": "orchestra"}


async def test_durable_restart_redelivers_unfinished_messages(where: dict[str, str]) -> None:
    bus = AdvancedMessageBus(mode="durable", **where)
    bus.register("a0", agent_type="Worker", groups=["g"])
    bus.register("a1")
    await bus.send_priority_message(msg("a0", message_id="acked", requires_ack=True))
    await bus.send_priority_message(msg("a0", message_id="unacked", requires_ack=True, prio=4))
    await bus.send_priority_message(msg("a0", message_id="plain-done", prio=3))
    await bus.send_priority_message(msg("a0", message_id="plain-waiting", prio=1))
    await bus.send_priority_message(msg(["a0", "a1"], message_id="half", prio=2))
    assert ids(bus.drain("a0", 4)) == ["acked", "unacked", "plain-done", "half"]
    assert bus.ack("a0", "acked")
    await bus.close()

    again = AdvancedMessageBus(mode="durable", **where)
    assert again.agents() == [
        {"agent_id": "a0", "agent_type": "Worker", "groups": ["g"]},
        {"agent_id": "a1", "agent_type": None, "groups": []},
    ]
    assert ids(again.drain("a0")) == ["unacked", "plain-waiting"]
    assert ids(again.drain("a1")) == ["half"]
    assert again.metrics()["recovered"] == 3
    again.ack("a0", "unacked")
    await again.close()
    with pytest.raises(OrchestrationError, match="closed"):
        await again.send_priority_message(msg("a0"))
    third = AdvancedMessageBus(mode="durable", **where)
    assert third.drain("a0") == [] and third.drain("a1") == [] and third.queue_depth == 0
    await third.close()


async def test_durable_commits_in_groups_and_waits_off_the_event_loop(where: dict[str, str]) -> None:
    bus = make_bus(2, mode="durable", **({"fsync": True} if "path" in where else {}), **where)
    store = bus._store
    assert store is not None
    await bus.flush()  # the registrations' commit
    before = store.commits
    sent = await asyncio.gather(*(bus.send_priority_message(msg(f"a{i % 2}")) for i in range(40)))
    assert len(set(sent)) == 40
    assert store.commits - before == 1  # 40 concurrent senders, one COMMIT
    # A commit that waits (an fsync, a distant database) runs on the bus's thread: the loop goes on.
    write = store.backend.write

    def slow_write(batch: Any) -> None:
        time.sleep(0.3)
        write(batch)

    store.backend.write = slow_write  # type: ignore[method-assign]
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.ensure_future(tick())
    await bus.send_priority_message(msg("a0"))
    ticker.cancel()
    assert ticks >= 10  # ~30 while the commit slept; none if it ran on the loop
    await bus.close()


async def test_buses_of_one_name_take_slots_and_adopt_a_gone_ones_messages(where: dict[str, str]) -> None:
    first, second = make_bus(1, mode="durable", **where), make_bus(1, mode="durable", **where)
    assert (first._store.backend.slot, second._store.backend.slot) == (0, 1)  # type: ignore[union-attr]
    await first.send_priority_message(msg(message_id="from-first", requires_ack=True))
    await second.send_priority_message(msg(message_id="from-second", requires_ack=True, prio=9))
    other = AdvancedMessageBus(mode="durable", **{**where, "name": "another-orchestra"})
    assert other.agents() == [] and other.queue_depth == 0  # names do not mix
    await other.close()
    await second.close()  # its slot is free: the next bus to open takes its messages
    third = AdvancedMessageBus(mode="durable", **where)
    assert third._store.backend.slot == 1  # type: ignore[union-attr]
    assert ids(third.drain("a0")) == ["from-second"]
    assert ids(first.drain("a0")) == ["from-first"]  # a live slot is left alone
    await first.close()
    await third.close()
    fourth = AdvancedMessageBus(mode="durable", **where)  # slot 0, adopts slot 1's unacked message
    assert ids(fourth.drain("a0")) == ["from-second", "from-first"]  # both unacked: delivered again
    await fourth.close()


async def test_a_live_bus_adopts_what_a_dead_ones_process_accepted(where: dict[str, str]) -> None:
    dead, live = make_bus(0, mode="durable", **where), make_bus(0, mode="durable", **where)
    dead.register("a0", agent_type="Worker")
    dead.register("only-there", groups=["night"])
    for i in range(3):
        await dead.send_priority_message(msg("a0", message_id=f"orphan-{i}", requires_ack=True, prio=3 + i))
    await dead.send_priority_message(msg("only-there", message_id="to-theirs"))
    assert ids(dead.drain("a0", 1)) == ["orphan-2"]  # in flight when the process died: redelivered
    await dead.flush()
    live.register("a0", agent_type="Worker")
    await live.send_priority_message(msg("a0", message_id="own", prio=1))
    assert await live.adopt_orphans() == 0  # its process is alive
    dead._store.backend.close()  # type: ignore[union-attr]  # as a SIGKILL does: its locks go

    # Adopt while sending: adopted messages and new ones get distinct numbers.
    sends = [live.send_priority_message(msg("a0", message_id=f"new-{i}", prio=2)) for i in range(20)]
    adopted, *_ = await asyncio.gather(live.adopt_orphans(), *sends)
    assert adopted == 4
    assert ids(live.drain("a0")) == ["orphan-2", "orphan-1", "orphan-0", *[f"new-{i}" for i in range(20)], "own"]
    assert {"agent_id": "only-there", "agent_type": None, "groups": ["night"]} in live.agents()
    assert ids(live.drain("only-there")) == ["to-theirs"]
    assert await live.adopt_orphans() == 0
    await live.close()
    again = AdvancedMessageBus(mode="durable", **where)  # what it adopted is its own now
    assert sorted(ids(again.drain("a0"))) == ["orphan-0", "orphan-1", "orphan-2"]  # acks pending
    await again.close()
    await dead.close()


async def test_a_bus_file_of_the_previous_version_is_migrated_into_slot_0(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "bus.sqlite"
    old = sqlite3.connect(path)
    old.executescript("""
        CREATE TABLE messages (seq INTEGER PRIMARY KEY, message_id TEXT NOT NULL, meta TEXT NOT NULL, content TEXT NOT NULL);
        CREATE TABLE rcpt (seq INTEGER NOT NULL, recipient TEXT NOT NULL, status TEXT NOT NULL,
            attempts INTEGER NOT NULL, PRIMARY KEY (seq, recipient)) WITHOUT ROWID;
        CREATE TABLE dead_letters (id INTEGER PRIMARY KEY, body TEXT NOT NULL);
        CREATE TABLE agents (agent_id TEXT PRIMARY KEY, agent_type TEXT, groups TEXT NOT NULL);
    """)
    meta = {"sender": "ops", "targets": ["a0"], "recipients": ["a0"], "message_type": "note", "priority_level": 5,
            "ttl_seconds": None, "expires_wall": None, "requires_ack": True, "conversation_id": None,
            "created_ts": "2026-12-01T00:00:00+00:00"}
    old.execute("INSERT INTO messages VALUES (7, 'kept', ?, ?)", (json.dumps(meta), json.dumps({"n": 1})))
    old.execute("INSERT INTO rcpt VALUES (7, 'a0', 'delivered', 1)")
    old.execute("INSERT INTO agents VALUES ('a0', 'Worker', '[\"g\"]')")
    old.execute("INSERT INTO dead_letters (body) VALUES (?)", (json.dumps({"reason": "old"}),))
    old.commit()
    old.close()
    bus = AdvancedMessageBus(mode="durable", path=str(path), name="orchestra")
    assert bus.agents() == [{"agent_id": "a0", "agent_type": "Worker", "groups": ["g"]}]
    assert [(m.message_id, m.content) for m in bus.drain("a0")] == [("kept", {"n": 1})]
    assert bus.dead_letters() == [{"reason": "old"}]
    await bus.close()
    tables = {name for (name,) in sqlite3.connect(path).execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert tables == {"stellar_bus_messages", "stellar_bus_rcpt", "stellar_bus_dead_letters", "stellar_bus_agents"}


async def test_durable_restore_of_a_snapshot_persists_it(where: dict[str, str]) -> None:
    source = make_bus(1, priority_queue_size=1)
    await source.send_priority_message(msg(message_id="shed", prio=1))
    await source.send_priority_message(msg(message_id="carried", requires_ack=True))
    target = AdvancedMessageBus(mode="durable", **where)
    target.restore(source.snapshot())
    await target.close()
    reopened = AdvancedMessageBus(mode="durable", **where)
    assert ids(reopened.drain("a0")) == ["carried"]
    assert [d["message"]["message_id"] for d in reopened.dead_letters()] == ["shed"]
    assert reopened.agents() == source.agents()
    await reopened.close()


CHILD = textwrap.dedent(
    """
    import asyncio, json, sys
    from stellar_graph.bus import AdvancedMessageBus

    async def main(where, n):
        bus = AdvancedMessageBus(mode="durable", ack_timeout=3600, **where)
        for i in range(4):
            bus.register(f"a{i}")
        sent, plain = [], []
        for i in range(n):  # one at a time ...
            sent.append(await bus.send_priority_message({
                "sender": "child", "recipients": [f"a{i % 4}"], "message_type": "work",
                "priority_level": 1 + i % 10, "requires_ack": True, "content": {"i": i}}))
        sent += await asyncio.gather(*(  # ... and many in one tick (group commit)
            bus.send("child", f"a{i % 4}", "work", {"i": i}, requires_ack=True)
            for i in range(n, 2 * n)))
        for i in range(4):  # delivered without acks: done, must not come back
            plain.append(await bus.send("child", f"a{i}", "plain", {}, priority_level=10))
        acked = []
        for i in range(4):
            for m in bus.drain(f"a{i}", n // 2):
                if m.message_type == "work" and m.content["i"] % 3 == 0:
                    assert bus.ack(f"a{i}", m.message_id)
                    acked.append(m.message_id)
        await bus.flush()
        print("READY " + json.dumps({"sent": sent, "acked": acked, "plain": plain}), flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main(json.loads(sys.argv[1]), int(sys.argv[2])))
    """
)


@pytest.mark.slow
async def test_durable_survives_kill_9_exactly_once(where: dict[str, str], tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, json.dumps(where), "60", stdout=asyncio.subprocess.PIPE, env=env,
        cwd=tmp_path,
    )
    try:
        line = (await asyncio.wait_for(child.stdout.readline(), timeout=60)).decode()  # type: ignore[union-attr]
    finally:
        child.send_signal(signal.SIGKILL)
        await child.wait()
    assert child.returncode == -signal.SIGKILL
    assert line.startswith("READY "), line
    report = json.loads(line.removeprefix("READY "))
    sent, acked = report["sent"], set(report["acked"])
    assert len(sent) == 120 and len(set(sent)) == 120 and 0 < len(acked) < 120

    bus = AdvancedMessageBus(mode="durable", **where)  # the lock (or the slot) died with the child
    redelivered = [m.message_id for i in range(4) for m in bus.drain(f"a{i}")]
    assert len(redelivered) == len(set(redelivered))  # exactly once
    assert set(redelivered) == set(sent) - acked
    assert not set(redelivered) & set(report["plain"])
    await bus.close()
    if "database_url" in where:
        assert not os.listdir(tmp_path)  # the child wrote no file


# -- configuration ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "needle"),
    [
        ({"priority_queue_size": 0}, "priority_queue_size=0"),
        ({"broadcast_batch_size": 2.5}, "broadcast_batch_size=2.5"),
        ({"mode": "disk"}, "mode='disk'"),
        ({"mode": "durable"}, "needs a file path"),
        ({"path": "x.db"}, "only used with mode='durable'"),
        ({"database_url": "postgresql://x"}, "only used with mode='durable'"),
        ({"mode": "durable", "path": "x.db", "database_url": "postgresql://x"}, "both given"),
        ({"name": ""}, "name=''"),
        ({"ack_timeout": 0}, "ack_timeout=0"),
        ({"max_attempts": True}, "max_attempts=True"),
        ({"clock": 3}, "clock=3"),
    ],
)
def test_bad_constructor_arguments(options: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigurationError, match=needle.replace("(", r"\(")):
        AdvancedMessageBus(**options)


def test_from_config() -> None:
    cfg = OrchestraConfig.from_dict(
        {"messaging": {"priority_queue_size": 7, "broadcast_batch_size": 3}}
    )
    bus = AdvancedMessageBus.from_config(cfg.messaging, ack_timeout=2)
    assert (bus._capacity, bus._batch, bus._ack_timeout) == (7, 3, 2.0)
    assert bus.mode == "memory"
