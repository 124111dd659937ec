"""Saving and reviving a bus's state: snapshots (for checkpoints) and durable recovery.

Both paths rebuild envelopes the same way (:func:`_revive`): a recipient whose delivery was in
flight (delivered, not acked) is queued again, because the receiver that held it is gone; if it
already had ``max_attempts`` deliveries it becomes a dead letter instead.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from heapq import heappush
from typing import TYPE_CHECKING, Any, Final

from stellar_graph._bus_message import Envelope, encode_json, parse_message
from stellar_graph._bus_store import Recovered, meta_json_fields
from stellar_graph.errors import ConfigurationError

if TYPE_CHECKING:
    from stellar_graph._bus_core import BusCore
    from stellar_graph.bus import AdvancedMessageBus

__all__ = ["COUNTERS", "FORMAT", "forget", "meta_json", "recover", "restore", "snapshot"]

FORMAT: Final = "stellar_graph.bus/1"
COUNTERS: Final = (
    "sent",
    "delivered",
    "acked",
    "redelivered",
    "expired",
    "shed",
    "refused",
    "dead_lettered",
    "handler_errors",
    "recovered",
)
_QUEUED, _DELIVERED, _DEAD = "queued", "delivered", "dead-letter"
_FINAL = frozenset({"acked", "expired", _DEAD})


def meta_json(env: Envelope) -> str:
    """The durable ``meta`` column of a just-accepted envelope."""
    expires_wall = None if env.ttl_seconds is None else time.time() + env.ttl_seconds
    return encode_json(meta_json_fields(env, expires_wall))


def forget(bus: BusCore, env: Envelope) -> None:
    """Undo :meth:`AdvancedMessageBus._accept` for a message whose commit failed."""
    if bus._live.pop(env.message_id, None) is None:
        return
    if env._queued and bus._buckets[env.priority_level].pop(env._seq, None) is not None:
        bus._depth -= 1
    if env._expires is not None:
        bus._ttl_live -= 1
    env._status = dict.fromkeys(env._status, _DEAD)
    env._queued = env._open = 0
    bus._n["sent"] -= 1


def snapshot(bus: BusCore) -> dict[str, Any]:
    """See :meth:`AdvancedMessageBus.snapshot`."""
    now = bus._clock()
    messages = []
    for env in sorted(bus._live.values(), key=lambda e: e._seq):
        mid = env.message_id
        messages.append(
            {
                "seq": env._seq,
                "message": env.to_dict(),
                "resolved": list(env.recipients),
                "status": dict(env._status),
                "attempts": {
                    r: bus._attempts[(r, mid)] for r in env.recipients if (r, mid) in bus._attempts
                },
                "expires_in": None if env._expires is None else env._expires - now,
            }
        )
    return {
        "format": FORMAT,
        "next_seq": bus._seq + 1,
        "agents": bus._registry.to_list(),
        "messages": messages,
        "dead_letters": [dict(d) for d in bus._dead],
        "metrics": dict(bus._n),
    }


def restore(bus: AdvancedMessageBus, state: Mapping[str, Any]) -> None:
    """See :meth:`AdvancedMessageBus.restore`."""
    if not isinstance(state, Mapping) or state.get("format") != FORMAT:
        found = state.get("format") if isinstance(state, Mapping) else type(state).__name__
        raise ConfigurationError(
            f"Bus snapshot format {found!r} is not supported (expected {FORMAT!r}). "
            f"Fix: pass the dict returned by AdvancedMessageBus.snapshot().",
            field="format",
            value=found,
        )
    if bus._live:
        raise ConfigurationError(
            f"restore() needs an empty bus; this one holds {len(bus._live)} live message(s). "
            f"Fix: restore into a new AdvancedMessageBus."
        )
    for agent in state["agents"]:
        bus.register(agent["agent_id"], agent["agent_type"], agent["groups"])
    limit = max(bus._max_bytes, 1 << 30)  # a snapshot is trusted data: no size limit
    for item in state["messages"]:
        env, content = parse_message(item["message"], limit)
        env.recipients = tuple(item["resolved"])
        env._seq = item["seq"]
        states = {r: (s, item["attempts"].get(r, 0)) for r, s in item["status"].items()}
        if _revive(bus, env, states, item["expires_in"]) and bus._store is not None:
            bus._store.insert(env, meta_json(env), content)
            for r, s in env._status.items():
                if s != _QUEUED or (r, env.message_id) in bus._attempts:
                    bus._store.update(env._seq, r, s, bus._attempts.get((r, env.message_id), 0))
    bus._seq = max(bus._seq, int(state["next_seq"]) - 1)
    for record in state["dead_letters"]:
        bus._dead.append(dict(record))
        if bus._store is not None:
            bus._store.dead_letter(encode_json(record))
    for name in COUNTERS:
        bus._n[name] += int(state["metrics"].get(name, 0))
    if bus._store is not None:
        bus._store.flush()
    bus._wake_router()


def recover(bus: BusCore, found: Recovered) -> None:
    """Rebuild a durable bus from what its store held, or add what it adopted from a bus of the
    same name whose process died (agents it already knows keep their registration)."""
    for agent_id, agent_type, groups in found.agents:
        if agent_id not in bus._registry.agents:
            bus._registry.register(agent_id, agent_type, json.loads(groups))
    now_wall = time.time()
    for seq, message_id, meta_text, content_text in found.messages:
        meta = json.loads(meta_text)
        env = Envelope(
            message_id,
            meta["sender"],
            tuple(meta["targets"]),
            meta["message_type"],
            meta["priority_level"],
            json.loads(content_text),
            meta["ttl_seconds"],
            meta["requires_ack"],
            meta["conversation_id"],
            meta["created_ts"],
        )
        env.recipients = tuple(meta["recipients"])
        env._seq = seq
        expires = meta["expires_wall"]
        _revive(bus, env, found.rcpt.get(seq, {}), None if expires is None else expires - now_wall)
        bus._seq = max(bus._seq, seq)
    bus._dead.extend(json.loads(body) for body in found.dead_letters)


def _revive(
    bus: BusCore,
    env: Envelope,
    states: Mapping[str, tuple[str, int]],
    expires_in: float | None,
) -> bool:
    """Put a saved envelope back into the bus; returns False if nothing about it is left."""
    status: dict[str, str] = {}
    exhausted: list[str] = []
    queued = open_ = 0
    for r in env.recipients:
        state, attempts = states.get(r, (_QUEUED, 0))
        final = state in _FINAL or (state == _DELIVERED and not env.requires_ack)
        if not final:
            if attempts:
                bus._attempts[(r, env.message_id)] = attempts
            if state == _DELIVERED:  # in flight when saved: the receiver is gone
                bus._n["redelivered"] += 1
                state = _QUEUED
            if attempts >= bus._max_attempts:
                exhausted.append(r)
            queued += 1
            open_ += 1
        status[r] = state
    if not open_:
        return False
    env._status, env._queued, env._open = status, queued, open_
    if expires_in is not None:
        env._expires = bus._clock() + expires_in
        bus._ttl_live += 1
    bus._live[env.message_id] = env
    bus._buckets[env.priority_level][env._seq] = env
    bus._depth += 1
    bus._n["recovered"] += 1
    heappush(bus._heap, (-env.priority_level, env._seq, env))
    if exhausted:
        bus._dead_letter(
            env, exhausted, f"no ack after {bus._max_attempts} attempts (bus restarted)"
        )
    return True
