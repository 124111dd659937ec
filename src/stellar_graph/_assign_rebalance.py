"""Move planner behind :func:`stellar_graph.allocation.rebalance` (private; inputs are validated)."""

from __future__ import annotations

import numpy as np

__all__: list[str] = []


def _utilisation(counts: np.ndarray, caps: np.ndarray) -> np.ndarray:
    """assigned / capacity; an agent with no capacity is +inf when it holds tasks, else 1 (full)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        util: np.ndarray = counts / caps
    util[caps == 0] = np.where(counts[caps == 0] > 0, np.inf, 1.0)
    return util


def plan_moves(
    assignment: np.ndarray,
    scores: np.ndarray,
    caps: np.ndarray,
    movable: np.ndarray,
    *,
    migration_cost: float,
    high: float,
    low: float,
    max_moves: int | None,
    balance_weight: float,
) -> list[tuple[int, int, int]]:
    """Best-gain-first moves from sources (util > high) to targets (util < low).

    The gains are computed once from the utilisations at the start of the pass. Moves only lower
    the utilisation of sources and raise that of targets, so every gain can only shrink
    afterwards; together with the "source stays >= low, target stays <= high" limits this makes
    a second pass find nothing that the first one skipped.
    """
    n_agents = len(caps)
    counts = np.bincount(assignment[assignment >= 0], minlength=n_agents)
    util = _utilisation(counts, caps)
    sources = util > high
    targets = (util < low) & (caps > 0)
    cand = np.flatnonzero(movable & (assignment >= 0))
    cand = cand[sources[assignment[cand]]]
    tgt = np.flatnonzero(targets)
    if cand.size == 0 or tgt.size == 0 or max_moves == 0:
        return []
    frm = assignment[cand]
    # -inf - -inf is NaN (a task on an agent it cannot use, moving to another it cannot use):
    # NaN > cost is False, so such a pair simply never moves.
    with np.errstate(invalid="ignore"):
        gain = scores[np.ix_(cand, tgt)] - scores[cand, frm][:, None]
        if balance_weight:
            clipped = np.clip(util, 0.0, 1.0)
            gain = gain + balance_weight * (clipped[frm][:, None] - clipped[tgt][None, :])
        rows, cols = np.nonzero(gain > migration_cost)
    if rows.size == 0:
        return []
    # Best gain first; equal gains: lower task index, then lower agent index.
    order = np.lexsort((tgt[cols], cand[rows], -gain[rows, cols]))
    return _scan(
        cand[rows[order]], tgt[cols[order]], assignment, counts, caps, high, low, max_moves
    )


def _scan(
    tasks: np.ndarray,
    dests: np.ndarray,
    assignment: np.ndarray,
    counts: np.ndarray,
    caps: np.ndarray,
    high: float,
    low: float,
    max_moves: int | None,
) -> list[tuple[int, int, int]]:
    counts = counts.copy()
    moved: set[int] = set()
    moves: list[tuple[int, int, int]] = []
    limit = len(tasks) if max_moves is None else max_moves
    for t, j in zip(tasks.tolist(), dests.tolist(), strict=True):
        if t in moved:
            continue
        i = int(assignment[t])
        if caps[i] > 0 and (counts[i] / caps[i] <= high or (counts[i] - 1) / caps[i] < low):
            continue  # the source is no longer overloaded, or would become a target itself
        if counts[j] + 1 > caps[j] or (counts[j] + 1) / caps[j] > high:
            continue  # the target would become a source itself
        counts[i] -= 1
        counts[j] += 1
        moved.add(t)
        moves.append((t, i, j))
        if len(moves) >= limit:
            break
    return moves
