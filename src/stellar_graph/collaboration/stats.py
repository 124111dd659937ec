"""Collaboration metrics from the checkpointed state (pure; for :mod:`stellar_graph.metrics`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from stellar_graph.collaboration._records import FINISHED

__all__ = ["collaboration_metrics"]


def collaboration_metrics(state: Mapping[str, Any]) -> dict[str, Any]:
    """The ``collaboration`` branch of the metrics tree.

    ``success_rate`` = succeeded / (succeeded + failed + no_decision) over collaborations that ran
    to their end (rejected and invalid requests never started and do not count); ``None`` until
    one finished.

    Returns:
        ``success_rate``, ``by_status``, ``llm_calls``, ``llm_fallbacks``, ``conflicts``,
        ``conflicts_by_mediator`` (resolved by the LLM) and ``conflicts_by_rule``.
    """
    collabs: Mapping[str, Mapping[str, Any]] = state.get("collaborations") or {}
    statuses = Counter(str(r.get("status")) for r in collabs.values())
    finished = sum(statuses[s] for s in FINISHED)
    resolutions = [
        (c.get("resolution") or {}).get("decided_by", "")
        for r in collabs.values()
        for c in (r.get("conflicts") or {}).values()
    ]
    return {
        "success_rate": statuses["succeeded"] / finished if finished else None,
        "by_status": dict(statuses),
        "llm_calls": sum(int((r.get("usage") or {}).get("llm_calls", 0)) for r in collabs.values()),
        "llm_fallbacks": sum(len(r.get("fallbacks") or []) for r in collabs.values()),
        "conflicts": len(resolutions),
        "conflicts_by_mediator": sum(d.startswith("mediator:") for d in resolutions),
        "conflicts_by_rule": sum(d.startswith("rule:") for d in resolutions),
    }
