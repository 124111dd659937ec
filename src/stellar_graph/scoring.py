"""Vectorised, explainable multi-factor scoring of tasks against a pool of agents.

Five factors, each in [0, 1] (``FACTORS`` order): skills, resources, workload, deadline and
collaboration. Hard constraints (skills, resources, token budget, health, capacity) make an agent
infeasible (total ``-inf``) and give a human reason; the rest is a weighted sum. The agent pool is
kept as numpy arrays so one task is scored against thousands of agents in a few array operations;
:func:`score_pair_python` is the plain per-pair reference implementing the same definitions.

Example::

    pool = AgentPool.from_records(agent_dicts)        # once per registry change
    scores = score_task(task_dict, pool, weights=DEFAULT_WEIGHTS, now=now)
    best = scores.best()                              # None: scores.reasons() says why
    print(scores.explain(best, DEFAULT_WEIGHTS))
"""

from __future__ import annotations

import heapq
import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from stellar_graph import _scoring_python as _py
from stellar_graph._scoring_kernels import (
    score_matrix,
    task_collaboration,
    task_deadline,
    task_resources,
    task_skills,
)
from stellar_graph._scoring_python import (
    TIE_EPS,
    agent_skill_levels,
    score_pair_python,
    validate_weights,
)
from stellar_graph.errors import ConfigurationError, DuplicateAgentError, UnknownAgentError
from stellar_graph.models import DEFAULT_CAPACITY, FACTORS

__all__ = [
    "TIE_EPS",
    "AgentPool",
    "TaskScores",
    "agent_skill_levels",
    "score_matrix",
    "score_pair_python",
    "score_task",
    "validate_weights",
]

logger = logging.getLogger(__name__)

_EMPTY: frozenset[str] = frozenset()


def _members(names: Sequence[frozenset[str]] | Sequence[str]) -> dict[str, np.ndarray]:
    """Inverted index: name -> indices of the agents whose entry holds (or is) that name."""
    found: dict[str, list[int]] = {}
    for i, entry in enumerate(names):
        for name in (entry,) if isinstance(entry, str) else entry:
            found.setdefault(name, []).append(i)
    return {k: np.asarray(v, dtype=np.intp) for k, v in found.items()}


@dataclass(frozen=True, slots=True, eq=False)
class AgentPool:
    """The registered agents as arrays; rebuild it when the registry changes.

    Build it with :meth:`from_records`; :meth:`with_load` makes a cheap copy with new loads.
    Equality is identity (arrays do not compare as a whole).

    Attributes:
        ids: agent ids, in pool order. ``types``: their agent types.
        skill_index: skill -> column of ``skills``; ``skills``: (n, n_skills) levels, 0 = absent.
        capacity, load, healthy: (n,) concurrent-task capacity, active tasks, health.
        resource_index: resource -> column of ``resources`` (n, n_resources) available amounts.
        speed: (n,) relative speed; ``prompt_tokens``: (n,) system-prompt tokens.
        partners, avoided: per agent, the ids it prefers / avoids working with.
    """

    ids: tuple[str, ...]
    types: tuple[str, ...]
    skill_index: Mapping[str, int]
    skills: np.ndarray
    capacity: np.ndarray
    load: np.ndarray
    healthy: np.ndarray
    resource_index: Mapping[str, int]
    resources: np.ndarray
    speed: np.ndarray
    prompt_tokens: np.ndarray
    partners: tuple[frozenset[str], ...]
    avoided: tuple[frozenset[str], ...]
    _id_index: dict[str, int] = field(init=False, repr=False)
    _skills_ext: np.ndarray = field(init=False, repr=False)  # extra zero column: unknown skill
    _skills_t: np.ndarray = field(init=False, repr=False)  # (n_skills + 1, n) for row gathers
    _has_t: np.ndarray = field(init=False, repr=False)  # int8, 1 where level > 0
    _type_members: dict[str, np.ndarray] = field(init=False, repr=False)
    _partner_members: dict[str, np.ndarray] = field(init=False, repr=False)
    _avoided_members: dict[str, np.ndarray] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        n = len(self.ids)
        shapes = {
            "types": (len(self.types),),
            "skills": self.skills.shape[:1],
            "capacity": self.capacity.shape,
            "load": self.load.shape,
            "healthy": self.healthy.shape,
            "resources": self.resources.shape[:1],
            "speed": self.speed.shape,
            "prompt_tokens": self.prompt_tokens.shape,
            "partners": (len(self.partners),),
            "avoided": (len(self.avoided),),
        }
        bad = {k: s for k, s in shapes.items() if s != (n,)}
        if bad or self.skills.ndim != 2 or self.resources.ndim != 2:
            raise ConfigurationError(
                f"AgentPool arrays must have one row per agent ({n}); got shapes {bad!r}. "
                f"Fix: build the pool with AgentPool.from_records(...).",
                field="AgentPool",
                value=bad,
            )
        bad_rows = np.flatnonzero(
            (self.capacity < 1) | ~(self.speed > 0) | ~np.isfinite(self.speed)
        )
        if bad_rows.size:
            shown = [self.ids[i] for i in bad_rows[:10]]
            raise ConfigurationError(
                f"agents {shown!r} need capacity >= 1 and a finite speed > 0. "
                f"Fix: validate them with AgentProfile first.",
                field="capacity",
                value=shown,
            )
        id_index = {a: i for i, a in enumerate(self.ids)}
        if len(id_index) != n:
            counts = Counter(self.ids)
            raise DuplicateAgentError(next(a for a in self.ids if counts[a] > 1))
        skills_ext = np.zeros((n, self.skills.shape[1] + 1))
        skills_ext[:, :-1] = self.skills
        setter = object.__setattr__
        setter(self, "_id_index", id_index)
        setter(self, "_skills_ext", skills_ext)
        setter(self, "_skills_t", np.ascontiguousarray(skills_ext.T))
        setter(self, "_has_t", np.ascontiguousarray((skills_ext > 0).T, dtype=np.int8))
        setter(self, "_type_members", _members(self.types))
        setter(self, "_partner_members", _members(self.partners))
        setter(self, "_avoided_members", _members(self.avoided))

    @classmethod
    def from_records(cls, agents: Sequence[Mapping[str, Any]]) -> AgentPool:
        """Build a pool from agent records.

        Args:
            agents: ``AgentProfile.model_dump(mode="json")`` dicts with optional ``load`` (int,
                default 0), ``healthy`` (bool, default True) and ``prompt_tokens`` (default 0).

        Returns:
            The pool, agents in the given order, skill and resource columns sorted by name.

        Raises:
            ConfigurationError: a record has no ``agent_id``.
            DuplicateAgentError: two records share an ``agent_id``.
        """
        levels = [agent_skill_levels(a) for a in agents]
        skill_index = {s: j for j, s in enumerate(sorted({s for lv in levels for s in lv}))}
        res_names = sorted({r for a in agents for r in (a.get("resources") or {})})
        resource_index = {r: j for j, r in enumerate(res_names)}
        n = len(agents)
        skills = np.zeros((n, len(skill_index)))
        resources = np.zeros((n, len(resource_index)))
        for i, (agent, lv) in enumerate(zip(agents, levels, strict=True)):
            for skill, level in lv.items():
                skills[i, skill_index[skill]] = level
            for name, amount in (agent.get("resources") or {}).items():
                resources[i, resource_index[name]] = float(amount)
        prefs = [a.get("collaboration_preferences") or {} for a in agents]
        logger.debug(
            "agent pool: %d agents, %d skills, %d resources", n, len(skill_index), len(res_names)
        )
        return cls(
            ids=tuple(_agent_id(a, i) for i, a in enumerate(agents)),
            types=tuple(str(a.get("agent_type", "")) for a in agents),
            skill_index=skill_index,
            skills=skills,
            capacity=np.array([int(a.get("capacity", DEFAULT_CAPACITY)) for a in agents], dtype=np.int64),
            load=np.array([int(a.get("load", 0)) for a in agents], dtype=np.int64),
            healthy=np.array([bool(a.get("healthy", True)) for a in agents], dtype=bool),
            resource_index=resource_index,
            resources=resources,
            speed=np.array([float(a.get("speed", 1.0)) for a in agents], dtype=np.float64),
            prompt_tokens=np.array([int(a.get("prompt_tokens", 0)) for a in agents], np.int64),
            partners=tuple(frozenset(p.get("preferred_partners") or _EMPTY) for p in prefs),
            avoided=tuple(frozenset(p.get("avoided_partners") or _EMPTY) for p in prefs),
        )

    def with_load(self, load: np.ndarray | Sequence[int]) -> AgentPool:
        """A copy of the pool with new loads (everything else is shared, nothing rebuilt).

        Args:
            load: (n,) non-negative integer active-task counts, in pool order.

        Returns:
            The new pool.

        Raises:
            ConfigurationError: wrong shape, non-integer or negative loads.
        """
        arr = np.array(load)
        if arr.shape != (len(self.ids),) or (arr.size and arr.dtype.kind not in "iub"):
            ok_float = arr.dtype.kind == "f" and arr.shape == (len(self.ids),)
            if not (ok_float and np.all(np.isfinite(arr)) and np.all(arr == np.floor(arr))):
                raise ConfigurationError(
                    f"load must be {len(self.ids)} integers (one per agent), got {load!r}",
                    field="load",
                    value=load,
                )
        arr = arr.astype(np.int64)
        if arr.size and arr.min() < 0:
            raise ConfigurationError(f"load must be >= 0, got {load!r}", field="load", value=load)
        new = object.__new__(AgentPool)
        for name in AgentPool.__slots__:
            object.__setattr__(new, name, getattr(self, name))
        object.__setattr__(new, "load", arr)
        return new

    def index(self, agent_id: str) -> int:
        """Position of ``agent_id`` in the pool.

        Raises:
            UnknownAgentError: the id is not in the pool.
        """
        try:
            return self._id_index[agent_id]
        except KeyError:
            raise UnknownAgentError(agent_id, self.ids) from None

    def __len__(self) -> int:
        return len(self.ids)


def _agent_id(agent: Mapping[str, Any], i: int) -> str:
    try:
        return str(agent["agent_id"])
    except KeyError:
        raise ConfigurationError(
            f"agent record #{i} has no 'agent_id': {dict(agent)!r}. "
            f"Fix: pass AgentProfile.model_dump(mode='json') records.",
            field="agent_id",
        ) from None


@dataclass(frozen=True, slots=True)
class _Detail:
    """What score_task computed on the way, kept for reasons() and explain()."""

    pool: AgentPool
    required: tuple[str, ...]
    levels: np.ndarray  # (n, R)
    skill_ok: np.ndarray
    res_names: tuple[str, ...]  # resources with a positive requirement, in task order
    res_req: tuple[float, ...]
    res_avail: np.ndarray  # (n, k)
    budget: int | None
    est_tokens: np.ndarray
    minutes_left: float | None
    is_preferred: np.ndarray | None
    related: int
    liked: np.ndarray | None
    disliked: np.ndarray | None


@dataclass(frozen=True, eq=False)
class TaskScores:
    """One task scored against every agent of a pool (build it with :func:`score_task`).

    Attributes:
        task_id: the task. ``agent_ids``: the pool's agent ids (row order of every array).
        total: (n,) weighted score, ``-inf`` where infeasible.
        factors: (n, 5) factor values in ``FACTORS`` order, each in [0, 1] (also for infeasible).
        feasible: (n,) bool.
        predicted_minutes: (n,) predicted duration (times the duration factor when given).
        estimated_tokens: (n,) task tokens + the agent's prompt tokens.
        overdue: the task's deadline had already passed at ``now``.
    """

    task_id: str
    agent_ids: tuple[str, ...]
    total: np.ndarray
    factors: np.ndarray
    feasible: np.ndarray
    predicted_minutes: np.ndarray
    estimated_tokens: np.ndarray
    overdue: bool
    _detail: _Detail | None = field(default=None, repr=False)

    def best(self) -> int | None:
        """Index of the best feasible agent, or ``None`` when none is feasible.

        Highest total; totals within ``TIE_EPS`` tie and go to the lower load/capacity, then the
        smaller agent id, so the choice is deterministic.
        """
        if not self.feasible.any():
            return None
        cand = np.flatnonzero(self.total >= self.total.max() - TIE_EPS)
        return int(cand[0]) if cand.size == 1 else self._tie_break(cand.tolist())

    def ranked(self, k: int = 3) -> list[int]:
        """Up to ``k`` feasible agent indices, best first (same tie-break as :meth:`best`).

        It is :meth:`best` applied repeatedly to the agents not yet ranked.
        """
        feas = np.flatnonzero(self.feasible)
        k = min(k, feas.size)
        if k <= 0:
            return []
        totals = self.total[feas]
        kth = np.partition(totals, feas.size - k)[feas.size - k]
        # Every pick of the iterated best() lies within TIE_EPS of the k-th largest total.
        cand = feas[totals >= kth - TIE_EPS]
        cand = cand[np.argsort(-self.total[cand], kind="stable")]
        tot = self.total[cand].tolist()
        idx = cand.tolist()
        # The tie window (totals >= current top - TIE_EPS) only grows as the top is picked, so
        # a heap on the tie-break key gives iterated best() in O(n log n).
        heap: list[tuple[tuple[float, str], int]] = []
        taken = [False] * len(idx)
        head = nxt = 0
        out: list[int] = []
        while len(out) < k:
            while taken[head]:
                head += 1
            while nxt < len(idx) and tot[nxt] >= tot[head] - TIE_EPS:
                heapq.heappush(heap, (self._tie_key(idx[nxt]), nxt))
                nxt += 1
            _, pos = heapq.heappop(heap)
            taken[pos] = True
            out.append(idx[pos])
        return out

    def _tie_key(self, i: int) -> tuple[float, str]:
        if self._detail is None:
            return 0.0, self.agent_ids[i]
        pool = self._detail.pool
        return float(pool.load[i] / pool.capacity[i]), self.agent_ids[i]

    def _tie_break(self, cand: list[int]) -> int:
        return min(cand, key=self._tie_key)

    def breakdown(self, i: int) -> dict[str, float]:
        """Factor name -> value of agent ``i``."""
        return {name: float(v) for name, v in zip(FACTORS, self.factors[i], strict=True)}

    def reasons(self) -> dict[str, str]:
        """Agent id -> why it is infeasible ("; "-joined), for every infeasible agent."""
        bad = np.flatnonzero(~self.feasible)
        if bad.size == 0:
            return {}
        parts = _reason_parts(self._need_detail(), bad)
        return {self.agent_ids[i]: "; ".join(p) for i, p in zip(bad.tolist(), parts, strict=True)}

    def explain(self, i: int, weights: Mapping[str, float]) -> str:
        """Human explanation of agent ``i``'s score.

        Args:
            i: agent index. weights: the weights used for scoring.

        Returns:
            One line per factor (value, weight, contribution and a phrase such as
            "2/2 required skills", "load 1/3", "finishes 3.2x before the deadline"), then a
            last line with the total or the infeasibility reasons.
        """
        w = validate_weights(weights)
        phrases = _factor_phrases(self, self._need_detail(), i)
        lines = [
            f"{name:<13} {v:.3f} x {wt:.2f} = {v * wt:.3f}  ({phrase})"
            for name, v, wt, phrase in zip(FACTORS, self.factors[i], w, phrases, strict=True)
        ]
        if self.feasible[i]:
            lines.append(f"total         {float(self.total[i]):.3f}")
        else:
            lines.append("infeasible: " + "; ".join(_reason_parts(self._need_detail(), [i])[0]))
        return "\n".join(lines)

    def _need_detail(self) -> _Detail:
        if self._detail is None:
            raise ValueError("this TaskScores has no scoring detail; build it with score_task()")
        return self._detail


def _reason_parts(d: _Detail, rows: Sequence[int] | np.ndarray) -> list[list[str]]:
    """Reasons of the given agents, in the oracle's order: skills, resources, tokens, workload."""
    rows = np.asarray(rows, dtype=np.intp)
    pool = d.pool
    skill_bad = (~d.skill_ok[rows]).tolist()
    has = (d.levels[rows] > 0).tolist()
    avail = d.res_avail[rows].tolist()
    est = d.est_tokens[rows].tolist()
    healthy = pool.healthy[rows].tolist()
    load = pool.load[rows].tolist()
    cap = pool.capacity[rows].tolist()
    out: list[list[str]] = []
    for r in range(rows.size):
        parts: list[str] = []
        if skill_bad[r]:
            missing = [s for s, h in zip(d.required, has[r], strict=True) if not h]
            parts.append(_py.missing_skills_reason(missing))
        for name, req, have in zip(d.res_names, d.res_req, avail[r], strict=True):
            if have < req:
                parts.append(_py.resource_reason(name, req, have))
        if d.budget and est[r] > d.budget:
            parts.append(_py.token_reason(d.budget, est[r]))
        if not healthy[r]:
            parts.append("unhealthy")
        if load[r] >= cap[r]:
            parts.append(_py.capacity_reason(load[r], cap[r]))
        out.append(parts)
    return out


def _factor_phrases(s: TaskScores, d: _Detail, i: int) -> list[str]:
    pool = d.pool
    have = int((d.levels[i] > 0).sum())
    skills = f"{have}/{len(d.required)} required skills"
    if d.required:
        skills += f", mean level {float(d.levels[i].mean()):.2f}"
    res = [
        f"{name}: has {_py.fmt_num(a)}, needs {_py.fmt_num(q)}"
        for name, q, a in zip(d.res_names, d.res_req, d.res_avail[i].tolist(), strict=True)
    ]
    if d.budget:
        res.append(f"~{int(s.estimated_tokens[i])} of {d.budget} prompt tokens")
    work = f"load {int(pool.load[i])}/{int(pool.capacity[i])}"
    if not pool.healthy[i]:
        work += ", unhealthy"
    return [
        skills,
        "; ".join(res) or "no resource requirements",
        work,
        _py.deadline_phrase(d.minutes_left, float(s.predicted_minutes[i])),
        _py.collaboration_phrase(
            None if d.is_preferred is None else bool(d.is_preferred[i]),
            0 if d.liked is None else int(d.liked[i]),
            0 if d.disliked is None else int(d.disliked[i]),
            d.related,
        ),
    ]


# ---------------------------------------------------------------------------------- score_task


def score_task(
    task: Mapping[str, Any],
    pool: AgentPool,
    *,
    weights: Mapping[str, float],
    now: datetime,
    task_tokens: int = 0,
    related_agents: Sequence[str] = (),
    duration_factor: np.ndarray | None = None,
) -> TaskScores:
    """Score one task against every agent of the pool.

    Args:
        task: a ``Task.model_dump(mode="json")`` dict (deadline an ISO string or None).
        pool: the agents.
        weights: factor -> weight over ``FACTORS``, summing to 1.
        now: current time (naive = UTC).
        task_tokens: prompt tokens of the task itself (added to each agent's prompt tokens).
        related_agents: ids of agents that worked on the task's dependencies or collaborators.
        duration_factor: optional (n,) positive multipliers on the predicted duration (the
            caller's upper bound from completion-time prediction).

    Returns:
        The scores, with :meth:`TaskScores.best`, ``reasons`` and ``explain``.

    Raises:
        ConfigurationError: bad weights, deadline or ``duration_factor``.
    """
    w = validate_weights(weights)
    required, levels, skills_f, skill_ok = task_skills(task, pool)
    res_names, res_req, res_avail, res_f, res_ok, est, budget = task_resources(
        task, pool, task_tokens
    )
    capacity = pool.capacity
    work_ok = pool.healthy & (pool.load < capacity)
    work_f = np.clip(1.0 - pool.load / capacity, 0.0, 1.0)
    predicted, dl_f, left = task_deadline(task, pool, now, duration_factor)
    col_f, is_pref, liked, disliked, n_related = task_collaboration(task, pool, related_agents)
    feasible = skill_ok & res_ok & work_ok
    total = w[0] * skills_f + w[1] * res_f + w[2] * work_f + w[3] * dl_f + w[4] * col_f
    total[~feasible] = -np.inf
    detail = _Detail(
        pool=pool,
        required=required,
        levels=levels,
        skill_ok=skill_ok,
        res_names=res_names,
        res_req=res_req,
        res_avail=res_avail,
        budget=budget,
        est_tokens=est,
        minutes_left=left,
        is_preferred=is_pref,
        related=n_related,
        liked=liked,
        disliked=disliked,
    )
    return TaskScores(
        task_id=str(task.get("id", "")),
        agent_ids=pool.ids,
        total=total,
        factors=np.column_stack((skills_f, res_f, work_f, dl_f, col_f)),
        feasible=feasible,
        predicted_minutes=predicted,
        estimated_tokens=est,
        overdue=left is not None and left <= 0,
        _detail=detail,
    )
