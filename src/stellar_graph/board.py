"""The task board: which tasks are ready, who is loaded, and the allocator's decisions.

Pure functions over the JSON records kept in the graph state (no LangGraph here). The allocator
node calls :func:`plan_allocations`; tests call it directly.

Task record (``state["tasks"][id]``): the ``Task`` fields plus ``status`` (``pending`` →
``allocated`` (first on a free slot) or ``queued`` (behind other work on a slot) →
``completed``/``failed``, or ``refused``), ``agent_id``, ``slot``, ``queue_position``,
``allocation_id``, ``seq`` (submission order), ``prompt_tokens`` (task message), ``attempt``,
``result``/``error``/``report`` once done.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import numpy as np

from stellar_graph.allocation import Strategy, assign
from stellar_graph.learning import Decision, Learner
from stellar_graph.models import PRIORITY_RANK
from stellar_graph.prediction import CompletionPredictor
from stellar_graph.recovery import end_of_ladder
from stellar_graph.scoring import AgentPool, TaskScores, score_matrix, score_task

__all__ = [
    "ACTIVE",
    "FINISHED",
    "IMBALANCE_HIGH",
    "IMBALANCE_LOW",
    "QUEUE_SCORE_TOLERANCE",
    "imbalance",
    "allocation_id_for",
    "AllocationPlan",
    "agent_loads",
    "plan_allocations",
    "ready_tasks",
]

ACTIVE = frozenset({"allocated", "queued", "running"})
"""Bound to an agent: counted in its load."""
FINISHED = frozenset({"completed", "failed", "refused", "degraded"})
WAITING = frozenset({"pending", "held"})
"""Not bound yet: ``held`` tasks wait on a failed dependency that may still be retried."""


@dataclass
class AllocationPlan:
    """What one allocator pass decided."""

    allocations: dict[str, dict[str, Any]] = field(default_factory=dict)
    """allocation id -> allocation record (new or updated)."""
    task_patches: dict[str, dict[str, Any]] = field(default_factory=dict)
    """task id -> fields to merge into the task record."""
    dispatched: list[str] = field(default_factory=list)
    """task ids allocated in this pass, in dispatch order."""
    backlog_minutes: dict[str, float] = field(default_factory=dict)
    """agent id -> predicted minutes until its busiest slot is free, after this plan."""


def allocation_id_for(task_id: str) -> str:
    """The allocation id of a task (stable, so a replayed step writes the same record)."""
    return f"alloc-{task_id}"


def agent_loads(tasks: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
    """Active tasks per agent, derived from the board (never stored, so never out of sync)."""
    loads: dict[str, int] = {}
    for record in tasks.values():
        if record.get("status") in ACTIVE and record.get("agent_id"):
            loads[record["agent_id"]] = loads.get(record["agent_id"], 0) + 1
    return loads


UNUSABLE = frozenset({"failed", "refused", "degraded"})
"""Finished without a result a dependent can build on (``degraded``: the fallback's result says
that no agent could do the task)."""


def ready_tasks(tasks: Mapping[str, Mapping[str, Any]]) -> tuple[list[str], dict[str, str]]:
    """Waiting tasks whose dependencies completed, in allocation order; and blocked-by-failure ones.

    Returns:
        (ready ids sorted by priority, deadline and submission order; id -> reason for tasks
        whose dependency failed, was refused or degraded).
    """
    ready, doomed = [], {}
    for tid, record in tasks.items():
        if record.get("status") not in WAITING:
            continue
        settled = record.get("settled_dependencies") or {}  # dependencies that left the board
        deps = [tasks.get(d, {}).get("status") or settled.get(d) for d in record.get("dependencies") or []]
        bad = [d for d, s in zip(record.get("dependencies") or [], deps, strict=True) if s in UNUSABLE]
        if bad:
            if record.get("status") != "held":  # already held: nothing new to decide
                doomed[tid] = f"dependency {bad[0]!r} {deps[(record.get('dependencies') or []).index(bad[0])]}"
        elif all(s == "completed" for s in deps):
            ready.append(tid)
    ready.sort(key=lambda t: _order_key(tasks[t]))
    return ready, doomed


def _order_key(record: Mapping[str, Any]) -> tuple[int, str, int]:
    deadline = record.get("deadline") or "9999"
    return (-PRIORITY_RANK.get(record.get("priority", "medium"), 1), deadline, int(record.get("seq", 0)))


def plan_allocations(
    tasks: Mapping[str, Mapping[str, Any]],
    agents: Mapping[str, Mapping[str, Any]],
    *,
    weights: Mapping[str, float],
    now: datetime,
    strategy: Strategy = "auto",
    past_deadline: str = "flag",
    dependency_failure: str = "fail",
    predictor: CompletionPredictor | None = None,
    strategies: Sequence[str] = (),
    fallback_agent: str | None = None,
    learner: Learner | None = None,
    rng: np.random.Generator | None = None,
    load_aware: bool = True,
) -> AllocationPlan:
    """Bind every ready task to an agent slot, or refuse it with each agent's reason.

    Free slots are filled first, jointly: priorities in tiers (critical first), each tier solved
    by :func:`assign`. Tasks beyond the free capacity are queued behind running work, each on the
    slot where it is predicted to finish earliest among agents scoring within
    :data:`QUEUE_SCORE_TOLERANCE` of its best agent (list scheduling), so a slow queue does not
    collect unrelated work.

    With a ``predictor``, durations are judged by the upper bound of each agent's 90% completion
    interval (so "likely late" shows before dispatch) and every allocation carries the interval.

    With a ``learner`` in ``adaptive`` mode (see :func:`_learned_choices`), the learner picks
    among the agents scoring within :data:`QUEUE_SCORE_TOLERANCE` of each task's best, and the
    pick gets the task whenever it has a free slot (a task that overflows is placed load-aware,
    and its decision is not replayed, as the pick was not followed). ``load_aware=False``
    (``static`` mode) queues overflow on the best-scoring agent instead of the earliest finish.
    """
    plan = AllocationPlan()
    ready, doomed = ready_tasks(tasks)
    for tid, reason in doomed.items():
        # "fail" settles dependents now; "hold" keeps them until the dependency is retried.
        status = "failed" if dependency_failure == "fail" else "held"
        plan.task_patches[tid] = {"status": status, "error": reason}
    if not ready:
        return plan
    if not agents:
        for tid in ready:
            _refuse(plan, tasks[tid], {"(none)": "no agents registered"}, now)
        return plan
    loads = agent_loads(tasks)
    pool = AgentPool.from_records([{**a, "load": loads.get(a["agent_id"], 0)} for a in agents.values()])
    factors = predictor.upper_factors(list(pool.ids)) if predictor is not None else None
    queues = _SlotQueues(pool)
    bind = _Binder(plan, pool, weights, now, predictor)
    explore = learner is not None and learner.policy.explores
    overflow: list[dict[str, Any]] = []
    ready = _bind_forced(ready, tasks, pool, queues, bind, lambda r: _score(r, pool, weights, now, factors))
    for tier in _tiers(ready, tasks):
        recs = [dict(tasks[t]) for t in tier]
        if past_deadline == "refuse":
            recs = [r for r in recs if not _past_due(r, now) or _refuse(plan, r, {"(all)": "deadline has passed"}, now)]
        if not recs:
            continue
        tokens = [int(r.get("prompt_tokens", 0)) for r in recs]
        matrix = score_matrix(recs, pool, weights=weights, now=now, task_tokens=tokens, duration_factor=factors)
        for row, record in enumerate(recs):  # agents that failed a task do not get it back
            for agent_index in _excluded(record, pool):
                matrix[row, agent_index] = -np.inf
        if explore:
            assert learner is not None
            factor_rows = partial(_factor_rows, pool=pool, weights=weights, now=now, duration_factor=factors)
            _learned_choices(recs, matrix, list(pool.ids), learner, rng or np.random.default_rng(), bind.decisions, factor_rows)
        chosen = assign(matrix, queues.free_slots(), strategy=strategy)
        for record, agent_index in zip(recs, chosen.tolist(), strict=True):
            if agent_index < 0:
                overflow.append(record)
                continue
            scores = _score(record, pool, weights, now, factors)
            bind(record, scores, agent_index, queues)
        # Lower-priority tiers see the load the tiers above just took.
        pool = pool.with_load(queues.lengths())
    idle = pool.with_load(np.zeros_like(pool.load))
    for record in overflow:
        scores = _score(record, idle, weights, now, factors)
        _place_overflow(plan, record, scores, pool, queues, bind, now, strategies, fallback_agent, load_aware)
    plan.backlog_minutes = {a: float(t.max()) for a, t in zip(pool.ids, queues.busy_until, strict=True)}
    return plan


IMBALANCE_HIGH, IMBALANCE_LOW = 2.0, 1.5
"""Hysteresis band of the imbalance ratio (busiest agent's backlog / mean backlog)."""


def imbalance(backlog_minutes: Mapping[str, float], was_active: bool, *, queued: bool = True) -> tuple[bool, float]:
    """Whether the planned work is imbalanced, with hysteresis.

    The ratio is the busiest agent's predicted backlog over the mean backlog of all agents; the
    state turns on at :data:`IMBALANCE_HIGH` and off again below :data:`IMBALANCE_LOW`, so a
    ratio hovering around one threshold does not flap. Without ``queued`` work (a task waiting
    behind another on its agent) nothing could move, so the work is not imbalanced whatever the
    ratio: one task on idle agents gives a high ratio and nothing to balance.
    """
    values = list(backlog_minutes.values())
    mean = sum(values) / len(values) if values else 0.0
    ratio = max(values) / mean if mean > 0 else 0.0
    active = queued and (ratio >= IMBALANCE_HIGH or (was_active and ratio >= IMBALANCE_LOW))
    return active, round(ratio, 4)


def _place_overflow(
    plan: AllocationPlan,
    record: Mapping[str, Any],
    scores: TaskScores,
    pool: AgentPool,
    queues: _SlotQueues,
    bind: _Binder,
    now: datetime,
    strategies: Sequence[str],
    fallback_agent: str | None,
    load_aware: bool = True,
) -> None:
    """Queue a task beyond free capacity, or end its ladder (fallback, escalate, degrade, refuse).

    Load-aware: on the slot finishing it earliest among near-best agents; else behind its best.
    """
    if scores.feasible.any():
        best = queues.earliest_finish(scores) if load_aware else int(np.argmax(np.where(scores.feasible, scores.total, -np.inf)))
        bind(record, scores, best, queues)
        return
    reasons = {**scores.reasons(), **{pool.ids[i]: "failed this task before" for i in _excluded(record, pool)}}
    if not record.get("excluded_agents"):
        _refuse(plan, record, reasons, now)
        return
    fallback = _fallback_index(pool, record, strategies, fallback_agent)
    if fallback is None:
        _give_up(plan, record, reasons, strategies)
        return
    bind(record, scores, fallback, queues)
    plan.task_patches[record["id"]]["recovery"] = [*(record.get("recovery") or []), {"step": "fallback", "to": pool.ids[fallback]}]


QUEUE_SCORE_TOLERANCE = 0.9
"""A queued task may go to any agent scoring at least this fraction of its best agent's score;
in ``adaptive`` mode the learner chooses among the same agents."""

LEARNED_LIFT = 1.0
"""Added to the learner's pick in the score matrix: scores are in [0, 1], so the joint assignment
gives each task its pick whenever capacity allows, and resolves contention by the scores."""


def _learned_choices(
    recs: Sequence[Mapping[str, Any]],
    matrix: np.ndarray,
    agent_ids: Sequence[str],
    learner: Learner,
    rng: np.random.Generator,
    decisions: dict[str, Decision],
    factor_rows: Callable[[Mapping[str, Any]], np.ndarray],
) -> None:
    """Let the learner pick each task's agent among those the scores cannot tell apart.

    The candidates of a task are its feasible agents scoring at least
    :data:`QUEUE_SCORE_TOLERANCE` of its best score: the deterministic score still rules out poor
    fits (skills, resources, deadline), and learning plus exploration decide among the rest.
    The pick's matrix entry is lifted by :data:`LEARNED_LIFT`; the decision (candidates, their
    factor vectors, propensity) is kept for the optimizer to learn from and replay.
    """
    for row, record in enumerate(recs):
        finite = np.isfinite(matrix[row])
        if not finite.any():
            continue
        best = float(matrix[row][finite].max())
        candidates = np.flatnonzero(finite & (matrix[row] >= QUEUE_SCORE_TOLERANCE * best))
        if candidates.size < 2:
            continue
        decision = learner.decide(
            [agent_ids[int(j)] for j in candidates], matrix[row, candidates],
            record.get("required_skills") or [], rng, factors=factor_rows(record)[candidates],
        )
        matrix[row, candidates[decision.index]] += LEARNED_LIFT
        decisions[record["id"]] = decision


class _SlotQueues:
    """Per agent: its slots (capacity many) with queue length and predicted minutes until free."""

    def __init__(self, pool: AgentPool) -> None:
        self.capacity = pool.capacity.astype(int)
        self.busy_until = [np.zeros(int(c)) for c in self.capacity]
        self.length = [np.zeros(int(c), dtype=int) for c in self.capacity]
        for i, load in enumerate(pool.load.tolist()):  # work already running occupies slots
            for _ in range(min(int(load), int(self.capacity[i]))):
                self.length[i][int(np.argmin(self.length[i]))] += 1
        self.earliest = np.zeros(len(self.capacity))

    def free_slots(self) -> np.ndarray:
        return np.array([int((lengths == 0).sum()) for lengths in self.length])

    def lengths(self) -> np.ndarray:
        return np.array([int(lengths.sum()) for lengths in self.length])

    def push(self, agent: int, minutes: float) -> tuple[int, int, float]:
        """Queue a task on the agent's earliest-free slot; return (slot, position, start minutes).

        Running work occupies a slot without a predicted end here, so among slots free equally
        early the emptier one wins: a free slot before one that is running something.
        """
        slot = int(np.lexsort((self.length[agent], self.busy_until[agent]))[0])
        start = float(self.busy_until[agent][slot])
        position = int(self.length[agent][slot])
        self.busy_until[agent][slot] += minutes
        self.length[agent][slot] += 1
        self.earliest[agent] = float(self.busy_until[agent].min())
        return slot, position, start

    def earliest_finish(self, scores: TaskScores) -> int:
        best = float(scores.total[scores.feasible].max())
        candidates = np.flatnonzero(scores.feasible & (scores.total >= QUEUE_SCORE_TOLERANCE * best))
        finish = self.earliest[candidates] + scores.predicted_minutes[candidates]
        # Earliest finish; ties go to the higher score, then to the lower index (registration order).
        order = np.lexsort((candidates, -scores.total[candidates], finish))
        return int(candidates[order[0]])


def _score(record: Mapping[str, Any], pool: AgentPool, weights: Mapping[str, float], now: datetime, factors: np.ndarray | None) -> TaskScores:
    scores = score_task(record, pool, weights=weights, now=now, task_tokens=int(record.get("prompt_tokens", 0)), duration_factor=factors)
    for agent_index in _excluded(record, pool):
        scores.total[agent_index] = -np.inf
        scores.feasible[agent_index] = False
    return scores


def _factor_rows(record: Mapping[str, Any], *, pool: AgentPool, weights: Mapping[str, float], now: datetime, duration_factor: np.ndarray | None) -> np.ndarray:
    """The (agents, 5) factor vectors of one task, as the scores saw them (logged for replay)."""
    return _score(record, pool, weights, now, duration_factor).factors


def _excluded(record: Mapping[str, Any], pool: AgentPool) -> list[int]:
    """Indices of the agents a task must not go back to (they failed it with an agent error)."""
    ids = {a: i for i, a in enumerate(pool.ids)}
    return [ids[a] for a in record.get("excluded_agents") or () if a in ids]


def _tiers(ready: Sequence[str], tasks: Mapping[str, Mapping[str, Any]]) -> list[list[str]]:
    tiers: dict[int, list[str]] = {}
    for tid in ready:
        tiers.setdefault(PRIORITY_RANK.get(tasks[tid].get("priority", "medium"), 1), []).append(tid)
    return [tiers[rank] for rank in sorted(tiers, reverse=True)]


def _past_due(record: Mapping[str, Any], now: datetime) -> bool:
    deadline = record.get("deadline")
    return bool(deadline) and datetime.fromisoformat(str(deadline)) <= now


class _Binder:
    """Writes the allocation record and the task patch for a task bound to an agent slot."""

    def __init__(self, plan: AllocationPlan, pool: AgentPool, weights: Mapping[str, float], now: datetime, predictor: CompletionPredictor | None) -> None:
        self.plan, self.pool, self.weights, self.now, self.predictor = plan, pool, weights, now, predictor
        self.decisions: dict[str, Decision] = {}

    def __call__(self, record: Mapping[str, Any], scores: TaskScores, i: int, queues: _SlotQueues) -> None:
        pool, now = self.pool, self.now
        tid, agent_id = record["id"], pool.ids[i]
        estimate = float(record.get("estimated_duration_minutes", 60.0)) / float(pool.speed[i])
        interval = self.predictor.predict(agent_id, estimate) if self.predictor is not None else None
        median = interval.median_minutes if interval is not None else estimate
        upper = interval.upper_minutes if interval is not None else float(scores.predicted_minutes[i])
        slot, position, start = queues.push(i, median)
        status = "allocated" if position == 0 else "queued"
        explanation = scores.explain(i, self.weights)
        decision = self.decisions.get(tid)
        if decision is not None and decision.agent_id == agent_id:
            explanation += (
                f"\nadaptive: the learner's pick among {len(decision.candidates)} agents within "
                f"{QUEUE_SCORE_TOLERANCE:.0%} of the best score (probability {decision.propensity:.2f})"
            )
        if position:
            explanation += f"\nqueued on {agent_id} slot {slot} behind {position} task(s); predicted start in {start:.0f} min"
        deadline = record.get("deadline")
        finish_upper = now + timedelta(minutes=start + upper)
        allocation_id = allocation_id_for(tid)
        self.plan.allocations[allocation_id] = {
            "allocation_id": allocation_id,
            "task_id": tid,
            "agent_id": agent_id,
            "agent_type": pool.types[i],
            "score": round(float(scores.total[i]), 6) if np.isfinite(scores.total[i]) else 0.0,  # forced placements
            "breakdown": {k: round(v, 6) for k, v in scores.breakdown(i).items()},
            "weights": dict(self.weights),
            "status": status,
            "reasons": {},
            "explanation": explanation,
            "alternatives": [
                {"agent_id": pool.ids[j], "score": round(float(scores.total[j]), 6)} for j in scores.ranked(4) if j != i
            ][:3],
            "slot": slot,
            "queue_position": position,
            "predicted_start_minutes": round(start, 3),
            "predicted_duration_minutes": round(median, 3),
            "predicted_interval": interval.to_dict() if interval is not None else None,
            "predicted_completion": (now + timedelta(minutes=start + median)).isoformat(),
            "predicted_completion_upper": finish_upper.isoformat(),
            "likely_late": bool(deadline) and finish_upper > datetime.fromisoformat(str(deadline)),
            "estimated_prompt_tokens": int(scores.estimated_tokens[i]),
            "decision": decision.to_dict() if decision is not None else None,
            "overdue": bool(scores.overdue),
            "created_at": now.isoformat(),
        }
        self.plan.task_patches[tid] = {
            "status": status,
            "agent_id": agent_id,
            "slot": slot,
            "queue_position": position,
            "allocation_id": allocation_id,
            "attempt": int(record.get("attempt", 0)) + 1,
            "allocated_at": now.isoformat(),
            "estimated_minutes": round(estimate, 4),
        }
        self.plan.dispatched.append(tid)


def _bind_forced(
    ready: list[str], tasks: Mapping[str, Mapping[str, Any]], pool: AgentPool, queues: _SlotQueues, bind: _Binder, score: Any
) -> list[str]:
    """Bind tasks a human reassigned to a named agent (``assigned_agent``); return the rest."""
    rest = []
    for tid in ready:
        record = tasks[tid]
        target = record.get("assigned_agent")
        if target is None or target not in pool.ids:
            rest.append(tid)
            continue
        index = pool.ids.index(target)
        bind(record, score(record), index, queues)
        bind.plan.task_patches[tid]["assigned_agent"] = None  # one forced placement, then the ladder again
    return rest


def _fallback_index(pool: AgentPool, record: Mapping[str, Any], strategies: Sequence[str], fallback_agent: str | None) -> int | None:
    """The configured fallback agent, if the ladder allows it and it can still take this task."""
    if "fallback" not in strategies or fallback_agent is None or fallback_agent not in pool.ids:
        return None
    index = pool.ids.index(fallback_agent)
    excluded = set(record.get("excluded_agents") or ())
    return index if pool.healthy[index] and fallback_agent not in excluded else None


def _give_up(plan: AllocationPlan, record: Mapping[str, Any], reasons: Mapping[str, str], strategies: Sequence[str]) -> None:
    """No agent is left for a task after agent errors: escalate, degrade or fail (the ladder's end)."""
    last = (record.get("recovery") or [{}])[-1].get("error") or record.get("error") or "agent error"
    others = "; ".join(f"{a}: {r}" for a, r in list(reasons.items())[:10])
    error = f"{last} (reassignment found no other feasible agent: {others})"
    patch = end_of_ladder(record["id"], error, strategies)
    plan.task_patches[record["id"]] = patch
    plan.allocations[allocation_id_for(record["id"])] = {
        "task_id": record["id"], "agent_id": None, "status": patch["status"], "reasons": dict(reasons), "explanation": error,
    }


def _refuse(plan: AllocationPlan, record: Mapping[str, Any], reasons: Mapping[str, str], now: datetime) -> bool:
    allocation_id = allocation_id_for(record["id"])
    text = "; ".join(f"{a}: {r}" for a, r in list(reasons.items())[:10])
    plan.allocations[allocation_id] = {
        "allocation_id": allocation_id, "task_id": record["id"], "agent_id": None, "agent_type": None,
        "score": 0.0, "breakdown": {}, "weights": {}, "status": "refused", "reasons": dict(reasons),
        "explanation": f"no feasible agent: {text}", "alternatives": [], "overdue": False,
        "created_at": now.isoformat(),
    }
    plan.task_patches[record["id"]] = {"status": "refused", "allocation_id": allocation_id, "error": f"no feasible agent: {text}"}
    return False


def utc_now() -> datetime:
    """The current time, timezone-aware."""
    return datetime.now(UTC)
