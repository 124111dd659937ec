"""What the orchestra keeps in the LangGraph Store (cross-thread memory), and how to read it.

- ``("stellar_graph", "prediction") / "predictor"``: the completion-time predictor's calibration
  windows (bounded), so every thread and every restart predicts from what was learned.
- ``("stellar_graph", "agent_stats") / <agent id>``: per-agent outcome totals.
- ``("stellar_graph", "learning") / "learner"``: what the optimizer learned (success posteriors,
  decision count, live score weighting and rollback stack, last optimisation time); small, read
  by every allocator pass.
- ``("stellar_graph", "replay") / <slot>``: the experience replay buffer, one item per logged
  decision in a ring of ``experience_replay_buffer_size`` slots, so logging a decision writes
  one small item and only the strategy review reads them all.

The writer is the optimizer (its node after each run, or the facade's ``system_optimizer``);
the allocator only reads, so a pass re-run after a crash decides the same. A crash between the
optimizer's Store write and its checkpoint learns that run's outcomes twice on resume. Two threads
finishing at the same moment may overwrite each other's latest update (last writer wins); the
loss is a few observations of a bounded window, not correctness.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from langgraph.store.base import BaseStore, GetOp, Item, PutOp

from stellar_graph.config import OrchestraConfig
from stellar_graph.errors import ConfigurationError
from stellar_graph.learning import Learner
from stellar_graph.prediction import CompletionPredictor

__all__ = [
    "AGENT_STATS_NAMESPACE",
    "LEARNING_NAMESPACE",
    "PREDICTION_NAMESPACE",
    "REPLAY_NAMESPACE",
    "Learned",
    "Memory",
    "load_learned",
    "load_predictor",
    "load_replay",
    "read_memory",
    "save_learned",
    "write_memory",
]

logger = logging.getLogger(__name__)

PREDICTION_NAMESPACE = ("stellar_graph", "prediction")
AGENT_STATS_NAMESPACE = ("stellar_graph", "agent_stats")
LEARNING_NAMESPACE = ("stellar_graph", "learning")
REPLAY_NAMESPACE = ("stellar_graph", "replay")
_PREDICTOR_KEY = "predictor"
_LEARNER_KEY = "learner"


def _predictor_from(value: Any) -> CompletionPredictor:
    if value is None:
        return CompletionPredictor()
    try:
        return CompletionPredictor.from_dict(value)
    except ConfigurationError:
        logger.warning("stored predictor state is unreadable; starting from the prior", exc_info=True)
        return CompletionPredictor()


async def load_predictor(store: BaseStore | None) -> CompletionPredictor:
    """The stored predictor, or a fresh (prior-based) one when there is none or it is unreadable."""
    if store is None:
        return CompletionPredictor()
    item = await store.aget(PREDICTION_NAMESPACE, _PREDICTOR_KEY)
    return _predictor_from(item.value if item else None)


@dataclass
class Learned:
    """The learner as loaded from the Store, with the bookkeeping needed to save it back."""

    learner: Learner
    replay_seq: int = 0
    """Decisions ever saved to the replay ring (the next one goes to slot ``seq % capacity``)."""
    unsaved: int = 0
    """Decisions logged to ``learner.buffer`` since the load, not yet in the Store (the newest)."""
    optimized_at: str | None = None
    """When the optimizer last reviewed the strategy (ISO 8601)."""
    reviewed_seq: int = 0
    """:attr:`logged` at the last review (reviews wait for new evidence)."""
    replay_loaded: bool = False
    """Whether ``learner.buffer`` holds the stored entries (else only the ones logged since)."""

    @property
    def logged(self) -> int:
        """Decisions ever logged, saved or not."""
        return self.replay_seq + self.unsaved


@dataclass
class Memory:
    """Everything one optimizer or allocator pass reads from the Store, read in one batch."""

    learned: Learned
    predictor: CompletionPredictor
    agent_stats: dict[str, dict[str, Any]]
    """Per-agent outcome totals of the agents asked for."""


async def read_memory(store: BaseStore | None, config: OrchestraConfig, *, agents: Iterable[str] = ()) -> Memory:
    """The learner (without replay entries), the predictor and some agents' totals: one Store batch."""
    ids = sorted(set(agents))
    if store is None:
        stats = {a: _fresh_stats() for a in ids}
        return Memory(Learned(Learner.from_config(config), replay_loaded=True), CompletionPredictor(), stats)
    ops = [GetOp(LEARNING_NAMESPACE, _LEARNER_KEY), GetOp(PREDICTION_NAMESPACE, _PREDICTOR_KEY)]
    ops += [GetOp(AGENT_STATS_NAMESPACE, a) for a in ids]
    values = [it.value if isinstance(it, Item) else None for it in await store.abatch(ops)]
    learner_value, predictor_value, *stat_values = values
    stats = {a: dict(v) if v else _fresh_stats() for a, v in zip(ids, stat_values, strict=True)}
    return Memory(_learned_from(config, learner_value), _predictor_from(predictor_value), stats)


async def write_memory(store: BaseStore | None, memory: Memory) -> None:
    """Save what :func:`read_memory` read, and the unsaved replay entries: one Store batch."""
    if store is None:
        return
    ops = _learned_ops(memory.learned)
    ops.append(PutOp(PREDICTION_NAMESPACE, _PREDICTOR_KEY, memory.predictor.to_dict()))
    ops += [PutOp(AGENT_STATS_NAMESPACE, a, v) for a, v in memory.agent_stats.items()]
    await store.abatch(ops)


def _fresh_stats() -> dict[str, Any]:
    return {"completed": 0, "failed": 0, "minutes": 0.0, "tokens": 0}


async def load_learned(
    store: BaseStore | None, config: OrchestraConfig, *, replay: bool = False
) -> Learned:
    """The learner under ``config``, resumed from the Store (fresh without a store or state).

    Args:
        store: the graph's store. config: decides mode, rates and buffer size.
        replay: also load the replay entries (needed to review strategies, not to allocate).
    """
    if store is None:
        return Learned(Learner.from_config(config), replay_loaded=True)
    item = await store.aget(LEARNING_NAMESPACE, _LEARNER_KEY)
    learned = _learned_from(config, item.value if item else None)
    if replay:
        await load_replay(store, learned)
    return learned


async def save_learned(store: BaseStore | None, learned: Learned) -> None:
    """Persist the learner's core and its unsaved replay entries (no-op without a store)."""
    if store is not None:
        await store.abatch(_learned_ops(learned))


def _learned_from(config: OrchestraConfig, stored: Mapping[str, Any] | None) -> Learned:
    value: Mapping[str, Any] = stored or {}
    try:
        learner = Learner.restore(config, value.get("core"))
    except ConfigurationError:
        logger.warning("stored learning state is unreadable; starting afresh", exc_info=True)
        learner, value = Learner.from_config(config), {}
    return Learned(
        learner,
        replay_seq=int(value.get("replay_seq", 0)),
        optimized_at=value.get("optimized_at"),
        reviewed_seq=int(value.get("reviewed_seq", 0)),
    )


def _learned_ops(learned: Learned) -> list[PutOp]:
    """Puts for the unsaved replay entries (moving them into ``replay_seq``) and the core."""
    buffer = learned.learner.buffer
    ops = []
    fresh = buffer.to_dict()["entries"][len(buffer) - min(learned.unsaved, len(buffer)) :]
    learned.unsaved = 0
    for entry in fresh:
        slot = learned.replay_seq % buffer.capacity
        ops.append(PutOp(REPLAY_NAMESPACE, f"{slot:08d}", {"seq": learned.replay_seq, "entry": entry}, index=False))
        learned.replay_seq += 1
    core = {
        "core": learned.learner.core_dict(),
        "replay_seq": learned.replay_seq,
        "optimized_at": learned.optimized_at,
        "reviewed_seq": learned.reviewed_seq,
    }
    ops.append(PutOp(LEARNING_NAMESPACE, _LEARNER_KEY, core, index=False))
    return ops


async def load_replay(store: BaseStore, learned: Learned) -> None:
    """Fill ``learned.learner.buffer`` with the stored entries (then the ones logged since)."""
    if learned.replay_loaded:
        return
    buffer = learned.learner.buffer
    items = await store.asearch(REPLAY_NAMESPACE, limit=buffer.capacity)
    # Slots beyond a shrunken capacity may linger: keep only the newest ``capacity`` entries.
    rows = sorted((it.value for it in items), key=lambda v: int(v["seq"]))[-buffer.capacity :]
    logged_since = buffer.to_dict()["entries"]
    buffer.clear()
    for row in [r["entry"] for r in rows] + logged_since:
        candidates, factors, chosen, propensity, reward, estimates = row
        buffer.add(factors, int(chosen), propensity, reward, candidates=candidates, estimates=estimates)
    learned.replay_loaded = True
