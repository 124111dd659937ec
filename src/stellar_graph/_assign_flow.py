"""Min-cost-flow kernels behind :mod:`stellar_graph.allocation` (private).

Every function here trusts its inputs: ``scores`` is a float64 (T, A) matrix where ``-inf`` marks an
infeasible pair (masks already folded in, no NaN, no ``+inf``) and ``capacities`` is a non-negative
int64 (A,) vector. Validation lives in the public module.

The flow network is source -> task (cap 1) -> agent (cap 1, cost -score) -> sink (cap = capacity).
OR-Tools' ``solve_max_flow_with_min_cost`` first maximises the flow (the number of assigned tasks)
and then minimises the cost among maximum flows, which is exactly the product rule "assign as many
tasks as possible, then maximise the total score" without a hand-tuned bonus constant.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import numpy as np
from ortools.graph.python import min_cost_flow

from stellar_graph.errors import OrchestrationError

__all__: list[str] = []

logger = logging.getLogger(__name__)

# Scores are scaled so the largest |score| maps to this many integer cost units. 1e9 keeps the
# rounding loss below ~1e-9 of the largest score per task (far inside the 1e-6 relative target),
# while |cost| * (nodes + 1), which the cost-scaling solver multiplies internally, stays far from
# int64 overflow for any realistic pool. Measured: 1e6 and 1e9 solve in the same time (B2 sizes).
SCORE_RESOLUTION = 1e9
# Rows per chunk when building arcs, so a dense 10k x 1k problem never materialises several
# 10M-element temporaries at once.
_CHUNK_CELLS = 1 << 20

ArcChunk = tuple[np.ndarray, np.ndarray, np.ndarray]  # (task rows, agent cols, scores)


def cost_scale(scores: np.ndarray) -> float:
    """Integer cost units per score unit so the largest finite |score| is SCORE_RESOLUTION."""
    biggest = 0.0
    blocks = [scores] if scores.ndim == 1 else (scores[a:b] for a, b in _row_chunks(*scores.shape))
    for block in blocks:
        finite = block[np.isfinite(block)]
        if finite.size:
            biggest = max(biggest, float(np.abs(finite).max()))
    return SCORE_RESOLUTION / biggest if biggest > 0 else 1.0


def _row_chunks(n_rows: int, n_cols: int) -> Iterator[tuple[int, int]]:
    step = max(1, _CHUNK_CELLS // max(n_cols, 1))
    for start in range(0, n_rows, step):
        yield start, min(n_rows, start + step)


def solve_arcs(
    n_tasks: int,
    capacities: np.ndarray,
    chunks: Callable[[], Iterator[ArcChunk]],
    scale: float,
) -> np.ndarray:
    """Max-flow/min-cost over explicit task->agent arcs.

    Args:
        n_tasks: number of task nodes.
        capacities: (A,) slots per agent.
        chunks: called twice (build, then read flows); each call yields the same arc chunks
            ``(tasks, agents, scores)`` in the same order. Regenerating instead of storing keeps
            the peak memory of a dense 10M-arc problem to one chunk of numpy temporaries.
        scale: integer cost units per score unit.

    Returns:
        (T,) int64 agent per task, -1 where the maximum flow leaves the task out.
    """
    n_agents = len(capacities)
    for _attempt in range(3):
        smcf, n_arcs = _build_network(n_tasks, capacities, chunks, scale)
        status = smcf.solve_max_flow_with_min_cost()
        if status == smcf.OPTIMAL:
            break
        if status != smcf.BAD_COST_RANGE:
            raise OrchestrationError(
                f"min-cost flow solver returned status {status!r} on {n_tasks} tasks x "
                f"{n_agents} agents; this is a bug in stellar_graph.allocation, please report it "
                f"with the score matrix, or use strategy='greedy' meanwhile."
            )
        # Only reachable with enormous graphs: trade precision for range and say so.
        logger.warning("min-cost flow cost range too wide at scale %g; retrying coarser", scale)
        scale /= 1e3
    else:
        raise OrchestrationError(
            f"min-cost flow cost range stayed too wide after rescaling (last scale {scale!r}); "
            f"rescale the scores to roughly [0, 1] before calling assign()."
        )
    out = np.full(n_tasks, -1, dtype=np.int64)
    offset = 0
    for tasks, agents, _ in chunks():
        ids = np.arange(offset, offset + len(tasks), dtype=np.int32)
        used = np.asarray(smcf.flows(ids)) > 0
        out[tasks[used]] = agents[used]
        offset += len(tasks)
    logger.debug("min-cost flow: %d tasks, %d arcs, %d assigned", n_tasks, n_arcs, (out >= 0).sum())
    return out


def _build_network(
    n_tasks: int,
    capacities: np.ndarray,
    chunks: Callable[[], Iterator[ArcChunk]],
    scale: float,
) -> tuple[min_cost_flow.SimpleMinCostFlow, int]:
    """Task->agent arcs first (ids 0..m-1, in chunk order), then source and sink arcs."""
    n_agents = len(capacities)
    source, sink = n_tasks + n_agents, n_tasks + n_agents + 1
    smcf = min_cost_flow.SimpleMinCostFlow()
    n_arcs = 0
    for tasks, agents, values in chunks():
        smcf.add_arcs_with_capacity_and_unit_cost(
            tasks.astype(np.int32),
            (agents + n_tasks).astype(np.int32),
            np.ones(len(tasks), dtype=np.int64),
            -np.rint(values * scale).astype(np.int64),
        )
        n_arcs += len(tasks)
    smcf.add_arcs_with_capacity_and_unit_cost(
        np.full(n_tasks, source, dtype=np.int32),
        np.arange(n_tasks, dtype=np.int32),
        np.ones(n_tasks, dtype=np.int64),
        np.zeros(n_tasks, dtype=np.int64),
    )
    smcf.add_arcs_with_capacity_and_unit_cost(
        np.arange(n_tasks, n_tasks + n_agents, dtype=np.int32),
        np.full(n_agents, sink, dtype=np.int32),
        capacities.astype(np.int64),
        np.zeros(n_agents, dtype=np.int64),
    )
    # solve_max_flow_with_min_cost tolerates supply the network cannot carry: it pushes the
    # maximum flow and minimises cost among maximum flows.
    smcf.set_node_supply(source, n_tasks)
    smcf.set_node_supply(sink, -n_tasks)
    return smcf, n_arcs


def solve_dense(scores: np.ndarray, capacities: np.ndarray) -> np.ndarray:
    """Exact lexicographic optimum (max count, then max total) over every feasible pair."""
    n_tasks, n_agents = scores.shape
    if n_tasks == 0 or n_agents == 0:
        return np.full(n_tasks, -1, dtype=np.int64)

    def chunks() -> Iterator[ArcChunk]:
        for lo, hi in _row_chunks(n_tasks, n_agents):
            rows, cols = np.nonzero(np.isfinite(scores[lo:hi]))
            yield rows + lo, cols, scores[rows + lo, cols]

    return solve_arcs(n_tasks, capacities, chunks, cost_scale(scores))


def top_k_columns(scores: np.ndarray, k: int) -> np.ndarray:
    """(T, k) indices of each row's k largest scores (unordered; ties resolved by introselect)."""
    n_tasks, n_agents = scores.shape
    out = np.empty((n_tasks, k), dtype=np.int64)
    for lo, hi in _row_chunks(n_tasks, n_agents):
        out[lo:hi] = np.argpartition(scores[lo:hi], n_agents - k, axis=1)[:, n_agents - k :]
    return out


def solve_sparse(scores: np.ndarray, capacities: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Max-flow/min-cost restricted to the candidate columns ``cols`` (T, k) of each task."""
    n_tasks, k = cols.shape
    vals = np.take_along_axis(scores, cols, axis=1)
    keep = np.isfinite(vals)
    rows = np.broadcast_to(np.arange(n_tasks)[:, None], cols.shape)[keep]
    arcs = (rows, cols[keep], vals[keep])

    def chunks() -> Iterator[ArcChunk]:
        yield arcs

    # Scale from the arcs actually used: reading the whole matrix again would cost ~0.1 s.
    return solve_arcs(n_tasks, capacities, chunks, cost_scale(arcs[2]))


def residual(assignment: np.ndarray, capacities: np.ndarray) -> np.ndarray:
    """Free slots per agent left by ``assignment``."""
    used = np.bincount(assignment[assignment >= 0], minlength=len(capacities))
    return capacities - used


def solve_pruned(scores: np.ndarray, capacities: np.ndarray) -> np.ndarray:
    """Exact optimum, pruning each task to its top-T agents first (exact, see below).

    With T tasks, if task t sat on an agent outside its T best, one of those T agents (each with
    >= 1 slot, at most T - 1 of them filled by the other tasks) still has a free slot and scores at
    least as much, so moving t there loses nothing; the same argument keeps the maximum count. So
    the top-T candidates suffice, and a few displaced tasks against 1,000 agents become a tiny flow.
    """
    n_tasks, n_agents = scores.shape
    live = np.flatnonzero(capacities > 0)
    if n_tasks == 0 or live.size == 0:
        return np.full(n_tasks, -1, dtype=np.int64)
    sub = scores[:, live]
    if n_tasks >= live.size:
        local = solve_dense(sub, capacities[live])
    else:
        local = solve_sparse(sub, capacities[live], top_k_columns(sub, n_tasks))
    return np.where(local >= 0, live[np.maximum(local, 0)], -1)


def solve_fast(scores: np.ndarray, capacities: np.ndarray, top_k: int) -> np.ndarray:
    """Top-K sparse flow, then an exact overflow pass, then cardinality augmentation.

    1. Each task keeps its ``top_k`` best agents; max-flow/min-cost on that sparse graph.
    2. Overflow: tasks still unplaced are solved exactly against the agents with free slots,
       over all their feasible pairs (pruned exactly, :func:`solve_pruned`).
    3. If unplaced tasks remain whose feasible agents are all full while slots are free elsewhere,
       augmenting paths (re-routing already placed tasks) raise the count to the maximum.
    """
    n_tasks, n_agents = scores.shape
    if top_k >= n_agents:
        return solve_dense(scores, capacities)
    out = solve_sparse(scores, capacities, top_k_columns(scores, top_k))
    free = residual(out, capacities)
    left = np.flatnonzero(out < 0)
    if left.size and free.sum() > 0:
        extra = solve_pruned(scores[left], free)
        out[left] = extra
        logger.debug("fast: overflow pass placed %d of %d tasks", (extra >= 0).sum(), left.size)
        free = residual(out, capacities)
    if (out < 0).any() and free.sum() > 0:
        augment_cardinality(scores, out, free)
    return out


def augment_cardinality(scores: np.ndarray, out: np.ndarray, free: np.ndarray) -> None:
    """Place more tasks by re-routing placed ones along augmenting paths (in place).

    Breadth-first search from each unplaced task over "feasible agent -> a task on that agent ->
    another feasible agent" until an agent with a free slot is reached. Agents visited by a failed
    search can never reach a free slot later (an augmentation only changes agents that could), so
    they are skipped afterwards; each task is tried once. This only runs when masks leave tasks
    stranded, and the result then has the maximum number of assigned tasks.
    """
    n_agents = scores.shape[1]
    on_agent: list[list[int]] = [[] for _ in range(n_agents)]
    for t in np.flatnonzero(out >= 0):
        on_agent[out[t]].append(int(t))
    dead = np.zeros(n_agents, dtype=bool)
    placed = 0
    for u in np.flatnonzero(out < 0):
        path = _find_path(scores, int(u), out, on_agent, free, dead)
        if path is None:
            continue
        placed += 1
        for task, agent in path:
            if out[task] >= 0:
                on_agent[out[task]].remove(task)
            out[task] = agent
            on_agent[agent].append(task)
        free[path[0][1]] -= 1
    logger.debug("fast: augmenting paths placed %d more tasks", placed)


def _find_path(
    scores: np.ndarray,
    root: int,
    out: np.ndarray,
    on_agent: list[list[int]],
    free: np.ndarray,
    dead: np.ndarray,
) -> list[tuple[int, int]] | None:
    """(task, new agent) moves, free-slot end first, or None (and mark the search tree dead)."""
    visited = dead.copy()
    parent: dict[int, int] = {}
    frontier = [root]
    while frontier:
        reach = np.isfinite(scores[frontier]) & ~visited
        newly = np.flatnonzero(reach.any(axis=0))
        if newly.size == 0:
            break
        first = reach[:, newly].argmax(axis=0)
        for agent, row in zip(newly.tolist(), first.tolist(), strict=True):
            parent[agent] = frontier[row]
        visited[newly] = True
        open_slots = newly[free[newly] > 0]
        if open_slots.size:
            moves = []
            agent = int(open_slots[0])
            while True:
                task = parent[agent]
                moves.append((task, agent))
                if task == root:
                    return moves
                agent = int(out[task])
        frontier = [t for a in newly.tolist() for t in on_agent[a]]
    dead |= visited
    return None


def prefer_lower_agents(scores: np.ndarray, out: np.ndarray, capacities: np.ndarray) -> None:
    """Deterministic tie rule, in place: no task sits on agent j while an agent j' < j with exactly
    the same score for it has a free slot. Moves keep the count and the total unchanged; each move
    lowers the sum of agent indices, so the loop ends."""
    n_tasks, n_agents = scores.shape
    free = residual(out, capacities)
    cols = np.arange(n_agents)
    while (free > 0).any():
        moved = 0
        for lo, hi in _row_chunks(n_tasks, n_agents):
            cur = out[lo:hi]
            rows = np.flatnonzero(cur >= 0)
            if rows.size == 0:
                continue
            block = scores[lo:hi][rows]
            best = block[np.arange(rows.size), cur[rows]]
            better = (block == best[:, None]) & (cols[None, :] < cur[rows][:, None]) & (free > 0)
            for r in np.flatnonzero(better.any(axis=1)).tolist():
                ok = np.flatnonzero(better[r] & (free > 0))
                if ok.size:
                    t = lo + int(rows[r])
                    free[out[t]] += 1
                    out[t] = int(ok[0])
                    free[ok[0]] -= 1
                    moved += 1
        if moved == 0:
            break
