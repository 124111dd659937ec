"""What the orchestra keeps in the LangGraph Store (cross-thread memory), and how to read it.

- ``("stellar_graph", "prediction") / "predictor"``: the completion-time predictor's calibration
  windows (bounded), so every thread and every restart predicts from what was learned.
- ``("stellar_graph", "agent_stats") / <agent id>``: per-agent outcome totals.

Writers are the optimizer node (after each run); readers are the allocator node. Two threads
finishing at the same moment may overwrite each other's latest update (last writer wins); the
loss is a few observations of a bounded window, not correctness.
"""

from __future__ import annotations

import logging

from langgraph.store.base import BaseStore

from stellar_graph.errors import ConfigurationError
from stellar_graph.prediction import CompletionPredictor

__all__ = ["AGENT_STATS_NAMESPACE", "PREDICTION_NAMESPACE", "load_predictor", "save_predictor"]

logger = logging.getLogger(__name__)

PREDICTION_NAMESPACE = ("stellar_graph", "prediction")
AGENT_STATS_NAMESPACE = ("stellar_graph", "agent_stats")
_PREDICTOR_KEY = "predictor"


async def load_predictor(store: BaseStore | None) -> CompletionPredictor:
    """The stored predictor, or a fresh (prior-based) one when there is none or it is unreadable."""
    if store is None:
        return CompletionPredictor()
    item = await store.aget(PREDICTION_NAMESPACE, _PREDICTOR_KEY)
    if item is None:
        return CompletionPredictor()
    try:
        return CompletionPredictor.from_dict(item.value)
    except ConfigurationError:
        logger.warning("stored predictor state is unreadable; starting from the prior", exc_info=True)
        return CompletionPredictor()


async def save_predictor(store: BaseStore | None, predictor: CompletionPredictor) -> None:
    """Persist the predictor (no-op without a store)."""
    if store is not None:
        await store.aput(PREDICTION_NAMESPACE, _PREDICTOR_KEY, predictor.to_dict())
