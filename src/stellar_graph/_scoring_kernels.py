"""Array kernels of the scorer: one task x n agents, and many tasks x n agents.

``task_*`` compute one factor (and its feasibility) of one task for every agent of the pool;
:func:`stellar_graph.scoring.score_task` assembles them. :func:`score_matrix` does the same for a
batch of tasks as (tasks x agents) arrays: its per-task Python only turns each task dict into a few
numbers (skill counts, resource amounts, budget, minutes left, preferred agents); every task x
agent value is computed by numpy, in blocks of tasks. Definitions: see :mod:`stellar_graph.scoring`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from stellar_graph._scoring_python import (
    minutes_left,
    parse_when,
    unique_related,
    validate_weights,
)
from stellar_graph.errors import ConfigurationError

if TYPE_CHECKING:
    from stellar_graph.scoring import AgentPool

__all__ = [
    "score_matrix",
    "task_collaboration",
    "task_deadline",
    "task_resources",
    "task_skills",
]


def score_matrix(
    tasks: Sequence[Mapping[str, Any]],
    pool: AgentPool,
    *,
    weights: Mapping[str, float],
    now: datetime,
    task_tokens: Sequence[int] | None = None,
    chunk: int = 1000,
    duration_factor: np.ndarray | None = None,
) -> np.ndarray:
    """Total scores of every task against every agent.

    Args:
        tasks: ``Task.model_dump(mode="json")`` dicts.
        pool: the agents.
        weights: factor -> weight over ``FACTORS``, summing to 1.
        now: current time (naive = UTC).
        task_tokens: prompt tokens of each task (default 0 for all).
        chunk: tasks per vectorised block (memory is about 10 x chunk x agents floats).
        duration_factor: optional (agents,) multipliers on predicted durations, as in ``score_task``
            (the completion-time interval's upper bound relative to the estimate).

    Returns:
        (len(tasks), len(pool)) float64 totals, ``-inf`` where the agent is infeasible. Equal
        (within 1e-12) to stacking ``score_task(...).total`` without related agents.

    Raises:
        ConfigurationError: bad weights, deadline, ``task_tokens`` length or ``chunk``.
    """
    w = validate_weights(weights)
    if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
        raise ConfigurationError(f"chunk must be an int >= 1, got {chunk!r}", field="chunk")
    tokens = np.zeros(len(tasks), dtype=np.int64)
    if task_tokens is not None:
        tokens = np.asarray(task_tokens, dtype=np.int64)
        if tokens.shape != (len(tasks),):
            raise ConfigurationError(
                f"task_tokens must have one entry per task ({len(tasks)}), got {len(task_tokens)}",
                field="task_tokens",
            )
    out = np.empty((len(tasks), len(pool)))
    capacity = pool.capacity
    work_ok = pool.healthy & (pool.load < capacity)
    work_f = np.clip(1.0 - pool.load / capacity, 0.0, 1.0)
    for start in range(0, len(tasks), chunk):
        block = tasks[start : start + chunk]
        total, ok = _batch_skills(block, pool)
        res_f, res_ok = _batch_resources(block, pool, tokens[start : start + chunk])
        ok &= res_ok
        ok &= work_ok
        # Same operation order as score_task: ((w0*s + w1*r) + w2*wl) + w3*d) + w4*c.
        total *= w[0]
        total += np.multiply(res_f, w[1], out=res_f)
        total += w[2] * work_f
        deadline_f = _batch_deadline(block, pool, now, duration_factor)
        total += np.multiply(deadline_f, w[3], out=deadline_f)
        collab_f = _batch_collaboration(block, pool)
        total += np.multiply(collab_f, w[4], out=collab_f)
        total[~ok] = -np.inf
        out[start : start + chunk] = total
    return out


def _batch_skills(
    tasks: Sequence[Mapping[str, Any]], pool: AgentPool
) -> tuple[np.ndarray, np.ndarray]:
    unknown = pool.skills.shape[1]  # index of the all-zero row: unknown skill or padding
    required = [task.get("required_skills") or () for task in tasks]
    n_req = np.array([len(r) for r in required], dtype=np.float64)
    cols = np.full((len(tasks), max([1, *map(len, required)])), unknown, dtype=np.intp)
    for t, req in enumerate(required):
        cols[t, : len(req)] = [pool.skill_index.get(s, unknown) for s in req]
    # Row gathers from the (skills x agents) matrix, summed in order: no BLAS (whose threads
    # stall on a busy machine) and the same summation order as the per-pair definition.
    skill_f = pool._skills_t[cols[:, 0]]
    held = pool._has_t[cols[:, 0]].astype(np.int16)
    for r in range(1, cols.shape[1]):
        skill_f += pool._skills_t[cols[:, r]]
        held += pool._has_t[cols[:, r]]
    require_all = np.array([bool(t.get("require_all_skills", False)) for t in tasks], dtype=bool)
    # Feasible iff the agent holds them all (require_all), at least one, or none is required.
    need = np.where(require_all, n_req, np.minimum(n_req, 1.0))
    ok = held >= need[:, None]
    none = n_req == 0
    skill_f /= np.where(none, 1.0, n_req)[:, None]
    skill_f[none] = 1.0
    return skill_f, ok


def _batch_resources(
    tasks: Sequence[Mapping[str, Any]], pool: AgentPool, tokens: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    n_t, n_a = len(tasks), len(pool)
    need = np.zeros((n_t, pool.resources.shape[1]))
    unknown = np.zeros(n_t)  # required resources no agent has: infeasible, term 0
    budget = np.zeros(n_t, dtype=np.int64)
    for t, task in enumerate(tasks):
        for name, req in (task.get("resources") or {}).items():
            if float(req) > 0:
                col = pool.resource_index.get(name)
                if col is None:
                    unknown[t] += 1
                else:
                    need[t, col] = float(req)
        budget[t] = int(task.get("token_budget") or 0)
    ok = np.empty((n_t, n_a), dtype=bool)
    ok[:] = (unknown == 0)[:, None]
    terms = np.zeros((n_t, n_a))
    tmp = np.empty((n_t, n_a))
    flags = np.empty((n_t, n_a), dtype=bool)
    for j in np.flatnonzero((need > 0).any(axis=0)).tolist():
        wanted = need[:, j] > 0
        avail = pool.resources[:, j][None, :]
        # Rows that do not need the resource compare against -inf and divide by +inf (term 0).
        np.greater_equal(avail, np.where(wanted, need[:, j], -np.inf)[:, None], out=flags)
        ok &= flags
        np.divide(avail, np.where(wanted, 2.0 * need[:, j], np.inf)[:, None], out=tmp)
        np.minimum(tmp, 1.0, out=tmp)
        terms += tmp
    rows = np.flatnonzero(budget > 0)
    if rows.size:
        est = tokens[rows][:, None] + pool.prompt_tokens[None, :]
        cap = budget[rows][:, None]
        ok[rows] &= est <= cap
        ratio = np.ones(est.shape)
        np.divide(cap, 2 * est, out=ratio, where=est > 0)
        terms[rows] += np.minimum(1.0, ratio)
    count = (need > 0).sum(axis=1) + unknown + (budget > 0)
    terms /= np.where(count > 0, count, 1.0)[:, None]
    terms[count == 0] = 1.0
    return terms, ok


def _batch_deadline(
    tasks: Sequence[Mapping[str, Any]], pool: AgentPool, now: datetime, factor: np.ndarray | None = None
) -> np.ndarray:
    minutes = np.array([float(t.get("estimated_duration_minutes", 60.0)) for t in tasks])
    left = np.full(len(tasks), np.nan)
    for t, task in enumerate(tasks):
        deadline = parse_when(task.get("deadline"))
        if deadline is not None:
            left[t] = minutes_left(deadline, now)
    f = np.ones((len(tasks), len(pool)))
    f[left <= 0] = 0.0
    rows = np.flatnonzero(left > 0)
    if rows.size:
        predicted = minutes[rows][:, None] / pool.speed[None, :]
        if factor is not None:  # same operation order as task_deadline
            predicted = predicted * np.asarray(factor, dtype=np.float64)[None, :]
        f[rows] = np.clip(left[rows][:, None] / predicted - 1.0, 0.0, 1.0)
    return f


def _batch_collaboration(tasks: Sequence[Mapping[str, Any]], pool: AgentPool) -> np.ndarray:
    c = np.full((len(tasks), len(pool)), 0.5)
    for t, task in enumerate(tasks):
        preferred = task.get("preferred_agents") or ()
        if not preferred:
            continue
        c[t] = 0.0
        for name in preferred:
            i = pool._id_index.get(name)
            if i is not None:
                c[t, i] = 1.0
            members = pool._type_members.get(name)
            if members is not None:
                c[t, members] = 1.0
    return c


# ---------------------------------------------------------------------- one task x n agents


def task_skills(
    task: Mapping[str, Any], pool: AgentPool
) -> tuple[tuple[str, ...], np.ndarray, np.ndarray, np.ndarray]:
    required = tuple(task.get("required_skills") or ())
    n = len(pool)
    if not required:
        return required, np.zeros((n, 0)), np.ones(n), np.ones(n, dtype=bool)
    missing_col = pool.skills.shape[1]
    cols = [pool.skill_index.get(s, missing_col) for s in required]
    levels = pool._skills_ext[:, cols]
    has = levels > 0
    ok = has.all(axis=1) if task.get("require_all_skills", False) else has.any(axis=1)
    return required, levels, levels.sum(axis=1) / len(required), np.asarray(ok)


def task_resources(
    task: Mapping[str, Any], pool: AgentPool, task_tokens: int
) -> tuple[
    tuple[str, ...], tuple[float, ...], np.ndarray, np.ndarray, np.ndarray, np.ndarray, int | None
]:
    n = len(pool)
    wanted = [(k, float(v)) for k, v in (task.get("resources") or {}).items() if float(v) > 0]
    names = tuple(k for k, _ in wanted)
    req = tuple(v for _, v in wanted)
    avail = np.zeros((n, len(wanted)))
    for j, name in enumerate(names):
        col = pool.resource_index.get(name)
        if col is not None:
            avail[:, j] = pool.resources[:, col]
    est = pool.prompt_tokens + int(task_tokens)
    budget = task.get("token_budget") or None
    if not wanted and budget is None:
        return names, req, avail, np.ones(n), np.ones(n, dtype=bool), est, None
    req_arr = np.asarray(req)
    ok = (avail >= req_arr).all(axis=1)
    terms = np.minimum(1.0, avail / (2.0 * req_arr)).sum(axis=1)
    count = len(wanted)
    if budget is not None:
        budget = int(budget)
        ok &= est <= budget
        ratio = np.ones(n)
        np.divide(budget, 2 * est, out=ratio, where=est > 0)
        terms = terms + np.minimum(1.0, ratio)
        count += 1
    return names, req, avail, terms / count, np.asarray(ok), est, budget


def task_deadline(
    task: Mapping[str, Any], pool: AgentPool, now: datetime, duration_factor: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, float | None]:
    n = len(pool)
    predicted = float(task.get("estimated_duration_minutes", 60.0)) / pool.speed
    if duration_factor is not None:
        factor = np.asarray(duration_factor, dtype=np.float64)
        if factor.shape != (n,) or not np.all(factor > 0) or not np.all(np.isfinite(factor)):
            raise ConfigurationError(
                f"duration_factor must be {n} finite positive numbers (one per agent), "
                f"got shape {factor.shape}",
                field="duration_factor",
                value=duration_factor,
            )
        predicted = predicted * factor
    deadline = parse_when(task.get("deadline"))
    if deadline is None:
        return predicted, np.ones(n), None
    left = minutes_left(deadline, now)
    if left <= 0:
        return predicted, np.zeros(n), left
    return predicted, np.clip(left / predicted - 1.0, 0.0, 1.0), left


def task_collaboration(
    task: Mapping[str, Any], pool: AgentPool, related_agents: Sequence[str]
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, np.ndarray | None, int]:
    n = len(pool)
    preferred = task.get("preferred_agents") or ()
    is_pref = None
    if preferred:
        is_pref = np.zeros(n, dtype=bool)
        for name in preferred:
            i = pool._id_index.get(name)
            if i is not None:
                is_pref[i] = True
            members = pool._type_members.get(name)
            if members is not None:
                is_pref[members] = True
        c = is_pref.astype(np.float64)
    else:
        c = np.full(n, 0.5)
    related = unique_related(related_agents)
    if not related:
        return c, is_pref, None, None, 0
    liked = np.zeros(n)
    disliked = np.zeros(n)
    for name in related:
        if (idx := pool._partner_members.get(name)) is not None:
            liked[idx] += 1.0
        if (idx := pool._avoided_members.get(name)) is not None:
            disliked[idx] += 1.0
    c = np.clip(c + 0.5 * ((liked - disliked) / len(related)), 0.0, 1.0)
    return c, is_pref, liked, disliked, len(related)
