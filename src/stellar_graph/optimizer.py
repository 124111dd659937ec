"""`SystemOptimizer`: learning from outcomes and reviewing the allocation strategy, on the Store.

The learning core (:mod:`stellar_graph.learning`) is pure; this module loads it from the
LangGraph Store, applies one operation and saves it back, so the graph's ``optimizer`` node, the
facade and a second process all work on the same learned state.

``optimize_system_performance`` reviews the score weighting by replay. Its metric is the
**replayed success rate** of the live weighting: the self-normalised inverse-propensity estimate,
over the replay buffer, of the success rate of allocating with that weighting (see
:func:`stellar_graph.learning.evaluate_weights`). ``before`` is the estimate for the weighting in
force, ``after`` the estimate for the one in force after the review, and
``improvement_percentage = 100 * (after - before) / before`` when a switch was applied, else 0.
Switches need a gain of at least ``optimization.adaptation_threshold`` (absolute, in success-rate
units), a large enough effective sample and a significant gain; only ``adaptive`` mode applies
them (``static`` and ``dynamic`` report the review and change nothing). Load balancing is not an
action of the review: the allocator places work load-aware at every pass in ``dynamic`` and
``adaptive`` mode, and a ``workload_imbalance`` triggers a review.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from langgraph.store.base import BaseStore

from stellar_graph.config import OrchestraConfig
from stellar_graph.errors import InvalidInputError
from stellar_graph.learning import Decision, Outcome
from stellar_graph.memory import (
    Learned,
    Memory,
    load_learned,
    load_replay,
    read_memory,
    save_learned,
    write_memory,
)

__all__ = ["REVIEW_MIN_NEW_DECISIONS", "SystemOptimizer", "outcome_of"]

logger = logging.getLogger(__name__)

REVIEW_MIN_NEW_DECISIONS = 200
"""Logged decisions needed since the last review before the graph reviews again (a review replays
the whole buffer; without new evidence it would only repeat the last verdict)."""


def outcome_of(task: Mapping[str, Any], allocation: Mapping[str, Any] | None) -> Outcome:
    """The learning outcome of a finished task record (and its allocation record)."""
    report = task.get("report") or {}
    usage = report.get("usage") or {}
    decision = (allocation or {}).get("decision")
    actual = report.get("duration_minutes")
    return Outcome(
        agent_id=task["agent_id"],
        success=task.get("status") == "completed",
        skills=tuple(task.get("required_skills") or ()),
        estimated_minutes=float(task["estimated_minutes"]) if task.get("estimated_minutes") else None,
        actual_minutes=float(actual) if actual and actual > 0 else None,
        tokens=int(usage.get("input_tokens", 0)) + int(usage.get("output_tokens", 0)) or None,
        decision=Decision.from_dict(decision) if decision else None,
        timestamp=task.get("finished_at"),
        task_id=task.get("id"),
    )


class SystemOptimizer:
    """The optimizer of one orchestra config over one Store (the seed's ``SystemOptimizer``).

    Example:
        >>> import asyncio
        >>> from langgraph.store.memory import InMemoryStore
        >>> opt = SystemOptimizer({"orchestration_mode": "adaptive"}, InMemoryStore())
        >>> asyncio.run(opt.learn_from_system_behavior([{"agent_id": "a", "success": True}]))["outcomes"]
        1
    """

    def __init__(
        self,
        config: OrchestraConfig | Mapping[str, Any] | None,
        store: BaseStore | None,
        *,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.config = OrchestraConfig.load(config)
        self.store = store
        self.clock = clock or (lambda: datetime.now().astimezone())

    @property
    def mode(self) -> str:
        """``static``, ``dynamic`` or ``adaptive``."""
        return self.config.orchestration_mode

    async def load(self, *, replay: bool = False) -> Learned:
        """The learned state under this config (see :func:`stellar_graph.memory.load_learned`)."""
        return await load_learned(self.store, self.config, replay=replay)

    async def learn_from_system_behavior(self, outcomes: Iterable[Outcome | Mapping[str, Any]]) -> dict[str, int]:
        """Learn from finished work: success posteriors, replay log, duration calibration.

        The graph's optimizer node already learns every run's outcomes; call this to feed
        outcomes from outside the graph.

        Args:
            outcomes: :class:`Outcome` objects or dicts of their fields (``agent_id``,
                ``success``, optional ``skills``, ``quality``, ``estimated_minutes``,
                ``actual_minutes``, ``tokens``, ``decision``).

        Returns:
            Counts: ``outcomes``, ``learned`` (posterior updates; 0 outside ``adaptive`` mode),
            ``logged`` (replay entries), ``calibrated`` (duration observations).

        Raises:
            InvalidInputError: an outcome names a bad field; nothing is learned from the batch.
        """
        batch = [o if isinstance(o, Outcome) else Outcome.from_dict(_outcome_dict(o)) for o in outcomes]
        memory = await read_memory(self.store, self.config)
        counts = _learn(memory, batch)
        await write_memory(self.store, memory)
        return counts

    async def after_run(
        self, finished: Sequence[Mapping[str, Any]], allocations: Mapping[str, Mapping[str, Any]], *, imbalance: bool
    ) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        """The optimizer node's work: one Store read, one write (and the replay when reviewing).

        Adds the finished tasks to the per-agent totals, learns from their outcomes, and reviews
        the strategy if :meth:`orchestrate_system_optimization` would.

        Returns:
            (the review report or ``None``, :meth:`summary`).
        """
        memory = await read_memory(self.store, self.config, agents=(t["agent_id"] for t in finished))
        _add_totals(memory.agent_stats, finished)
        _learn(memory, [outcome_of(t, allocations.get(t.get("allocation_id") or "")) for t in finished])
        reason = self._review_due(memory.learned, imbalance=imbalance)
        report = await self._review(memory.learned, reason) if reason else None
        await write_memory(self.store, memory)
        return report, self._summary(memory.learned)

    async def improve_orchestration_strategies(
        self, candidates: Sequence[Mapping[str, float]] | None = None
    ) -> list[dict[str, Any]]:
        """Replay candidate weightings; apply the best if it beats ``adaptation_threshold``.

        Returns:
            One result per candidate: ``weights``, ``before``, ``after``, ``gain``, ``stderr``,
            ``effective_n``, ``applied`` and ``reason`` (see ``StrategyManager.propose``).
        """
        learned = await self.load(replay=True)
        results = learned.learner.improve(candidates)
        await save_learned(self.store, learned)
        return results

    async def rollback(self) -> dict[str, float]:
        """Restore the weighting before the last applied switch; return the live weighting.

        Raises:
            OrchestrationError: there is no earlier weighting to restore.
        """
        learned = await self.load()
        weights = learned.learner.rollback()
        await save_learned(self.store, learned)
        return weights

    async def optimize_system_performance(self, *, reason: str = "on_demand") -> dict[str, Any]:
        """Review the strategy by replay and report the documented improvement (module docstring).

        Returns:
            ``reason``, ``mode``, ``metric`` (``replayed_success_rate``), ``before``, ``after``,
            ``improvement_percentage``, ``actions`` (what changed), ``candidates`` (each
            candidate's replayed before/after), ``weights`` (in force now), ``learning_score``
            and ``at``.
        """
        learned = await self.load()
        report = await self._review(learned, reason)
        await save_learned(self.store, learned)
        return report

    async def orchestrate_system_optimization(self, *, imbalance: bool = False) -> dict[str, Any] | None:
        """Run :meth:`optimize_system_performance` when it is due, else return ``None``.

        Due when at least :data:`REVIEW_MIN_NEW_DECISIONS` decisions were logged since the last
        review and either the run raised a ``workload_imbalance`` (``imbalance=True``) or
        ``optimization.optimization_frequency_minutes`` have passed on the orchestra's clock since
        the last review (or there was none). ``static`` and ``dynamic`` modes log no decisions,
        so the graph never reviews them; call :meth:`optimize_system_performance` directly.
        """
        learned = await self.load()
        reason = self._review_due(learned, imbalance=imbalance)
        if reason is None:
            return None
        report = await self._review(learned, reason)
        await save_learned(self.store, learned)
        return report

    async def summary(self) -> dict[str, Any]:
        """What was learned: mode, live weighting, decisions, learning score, per-agent posteriors."""
        return self._summary(await self.load())

    # -- in-memory steps (the callers load and save) ---------------------------------------
    def _review_due(self, learned: Learned, *, imbalance: bool) -> str | None:
        if self.mode != "adaptive" or learned.logged - learned.reviewed_seq < REVIEW_MIN_NEW_DECISIONS:
            return None
        if imbalance:
            return "workload_imbalance"
        last = learned.optimized_at
        period = timedelta(minutes=self.config.optimization.optimization_frequency_minutes)
        if last is not None and self.clock() - datetime.fromisoformat(last) < period:
            return None
        return "schedule"

    async def _review(self, learned: Learned, reason: str) -> dict[str, Any]:
        if self.store is not None:
            await load_replay(self.store, learned)
        learner = learned.learner
        old = learner.weights
        results = learner.improve()  # each result carries the replayed before/after estimates
        applied = [r for r in results if r["applied"]]
        before = results[0]["before"] if results else learner.strategies.evaluate(old, learner.buffer).value
        after = applied[0]["after"] if applied else before
        gain = 100.0 * (after - before) / before if applied and before and after is not None else 0.0
        now = self.clock()
        learned.optimized_at, learned.reviewed_seq = now.isoformat(), learned.logged
        report = {
            "reason": reason,
            "mode": self.mode,
            "metric": "replayed_success_rate",
            "before": before,
            "after": after,
            "improvement_percentage": round(max(gain, 0.0), 4),
            "actions": [{"action": "weight_change", "from": old, "to": learner.weights}] if applied else [],
            "candidates": results,
            "weights": learner.weights,
            "learning_score": learner.score.value(),
            "decisions_logged": len(learner.buffer),
            "at": now.isoformat(),
        }
        logger.info("optimisation (%s): %d candidates, improvement %.2f%%", reason, len(results), report["improvement_percentage"])
        return report

    def _summary(self, learned: Learned) -> dict[str, Any]:
        learner = learned.learner
        return {
            "mode": self.mode,
            "weights": learner.weights,
            "previous_weights": learner.strategies.previous,
            "decisions": learner.policy.t,
            "decisions_logged": learned.logged,
            "learning_score": learner.score.value(),
            "optimized_at": learned.optimized_at,
            "agents": {a: learner.model.summary(a) for a in learner.model.agents},
        }


def _learn(memory: Memory, batch: Sequence[Outcome]) -> dict[str, int]:
    learner = memory.learned.learner
    counts = learner.learn(batch, predictor=memory.predictor)
    memory.learned.unsaved += counts["logged"]
    if learner.policy.explores:
        # The allocator only reads the Store; decisions are counted here, as their outcomes
        # arrive (the count drives the exploration schedule).
        learner.policy.t += sum(1 for o in batch if o.decision is not None)
    return counts


def _add_totals(stats: dict[str, dict[str, Any]], finished: Sequence[Mapping[str, Any]]) -> None:
    """Per-agent outcome totals (completed, failed, reported minutes, tokens)."""
    for task in finished:
        totals = stats[task["agent_id"]]
        report = task.get("report") or {}
        usage = report.get("usage") or {}
        totals["completed" if task["status"] == "completed" else "failed"] += 1
        totals["minutes"] += float(report.get("duration_minutes") or 0.0)
        totals["tokens"] += int(usage.get("input_tokens", 0)) + int(usage.get("output_tokens", 0))


def _outcome_dict(value: object) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidInputError(
            f"outcome={value!r} is invalid. Fix: pass an Outcome or a dict with agent_id and success.",
            errors=[{"field": "outcome", "value": value, "message": "must be an Outcome or a dict"}],
        )
    return value
