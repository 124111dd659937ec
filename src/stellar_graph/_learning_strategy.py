"""`StrategyManager`: switch score weightings only on a replayed gain, and roll back."""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from stellar_graph._learning_checks import bad_state, check_int, check_number, check_state
from stellar_graph._learning_replay import ReplayBuffer, ReplayEstimate, evaluate_weights
from stellar_graph.config import DEFAULT_WEIGHTS
from stellar_graph.errors import OrchestrationError
from stellar_graph.models import FACTORS
from stellar_graph.scoring import validate_weights

__all__ = ["StrategyManager", "neighbour_weightings"]

logger = logging.getLogger(__name__)

_VERSION = 1
_TOL = 1e-12  # a gain equal to the threshold up to float rounding passes ("at least")


class StrategyManager:
    """Holds the live score weighting; changes it only when replay shows a large enough gain.

    :meth:`propose` estimates, with :func:`evaluate_weights` on the replay buffer, the success
    rate of the current weighting (``before``) and of each candidate (``after``). The gain is
    **absolute**: ``after - before``, in success-rate units, so ``adaptation_threshold = 0.1``
    demands ten more successes per hundred tasks. The candidate with the largest gain is applied
    if its gain is at least the threshold, both estimates have an effective sample size of at
    least ``min_effective_n`` and the gain is significant: ``gain - confidence * stderr > 0``
    with ``stderr = sqrt(se_before**2 + se_after**2)`` (conservative, as the two estimates share
    decisions). The last two guard against switching on a few heavily weighted lucky matches,
    which is what replay gives when the logs hold little exploration. At most one candidate is
    applied per call; the replaced weighting is pushed on a bounded stack that :meth:`rollback`
    pops.

    Example:
        >>> sm = StrategyManager(adaptation_threshold=0.05)
        >>> sm.propose([], ReplayBuffer())
        []
    """

    def __init__(
        self,
        weights: Mapping[str, float] | None = None,
        *,
        adaptation_threshold: float = 0.1,
        min_effective_n: float = 30.0,
        confidence: float = 1.645,
        success_weight: float = 0.0,
        max_history: int = 20,
    ) -> None:
        """Create a manager.

        Args:
            weights: the starting weighting over ``FACTORS`` (default ``DEFAULT_WEIGHTS``).
            adaptation_threshold: minimum absolute gain in estimated success rate, in [0, 1].
            min_effective_n: effective sample size both estimates need, >= 1.
            confidence: z of the significance check, >= 0 (1.645: one-sided 95%; 0 disables).
            success_weight: the live policy's blend with learned estimates, in [0, 1] (the
                evaluated policies use the same blend).
            max_history: history entries and rollback steps kept, >= 1.

        Raises:
            ConfigurationError: an argument is out of range.
        """
        self._current = _weights(DEFAULT_WEIGHTS if weights is None else weights)
        self.adaptation_threshold = check_number(
            "adaptation_threshold", adaptation_threshold, 0.0, 1.0
        )
        self.min_effective_n = check_number("min_effective_n", min_effective_n, 1.0, 1e12)
        self.confidence = check_number("confidence", confidence, 0.0, 10.0)
        self.success_weight = check_number("success_weight", success_weight, 0.0, 1.0)
        self.max_history = check_int("max_history", max_history, 1)
        self._previous: deque[dict[str, float]] = deque(maxlen=self.max_history)
        self._history: deque[dict[str, Any]] = deque(maxlen=self.max_history)
        self._seq = 0

    @property
    def current(self) -> dict[str, float]:
        """The live weighting (a copy)."""
        return dict(self._current)

    @property
    def previous(self) -> list[dict[str, float]]:
        """Weightings :meth:`rollback` can restore, oldest first (copies)."""
        return [dict(w) for w in self._previous]

    @property
    def history(self) -> list[dict[str, Any]]:
        """The last ``max_history`` proposals and rollbacks, oldest first."""
        return [dict(h) for h in self._history]

    def evaluate(self, weights: Mapping[str, float], buffer: ReplayBuffer) -> ReplayEstimate:
        """Replay estimate of ``weights`` on ``buffer`` with this manager's blend."""
        return evaluate_weights(buffer, weights, success_weight=self.success_weight)

    def propose(
        self, candidates: Sequence[Mapping[str, float]], buffer: ReplayBuffer, *, apply: bool = True
    ) -> list[dict[str, Any]]:
        """Evaluate candidate weightings by replay and apply the best one if it gains enough.

        Args:
            candidates: weightings over ``FACTORS``, each summing to 1.
            buffer: the logged decisions to replay.
            apply: ``False`` evaluates and judges only (a dry run; only the history changes).

        Returns:
            One dict per candidate, in order: ``weights``, ``before`` and ``after`` (estimated
            success rates, ``None`` without matching decisions), ``gain`` (``after - before``
            or ``None``) and its ``stderr``, ``matched_before``, ``matched_after``,
            ``effective_n`` (the smaller of the two), ``applied`` and ``reason``.

        Raises:
            ConfigurationError: a candidate is not a valid weighting (nothing is changed).
        """
        cands = [_weights(c) for c in candidates]
        if not cands:
            return []
        before = self.evaluate(self._current, buffer)
        results = [self._judge(w, before, self.evaluate(w, buffer)) for w in cands]
        eligible = [i for i, r in enumerate(results) if r["reason"] == _PASSED]
        best = max(eligible, key=lambda i: results[i]["gain"], default=None)
        for i in eligible:
            if i != best:
                results[i]["reason"] = "passed the threshold, but another candidate gained more"
        if best is not None and not apply:
            results[best]["reason"] = "would be applied, but this was a dry run (apply=False)"
            best = None
        if best is not None:
            results[best]["applied"] = True
            results[best]["reason"] = (
                f"applied: gain {results[best]['gain']:.4f} >= threshold {self.adaptation_threshold:g}"
            )
            self._previous.append(self._current)
            logger.info(
                "strategy switch: %s -> %s (replayed gain %.4f)",
                self._current,
                cands[best],
                results[best]["gain"],
            )
            self._current = dict(cands[best])
        self._record(
            event="propose" if apply else "evaluate",
            before=before.value,
            weights=results[best]["weights"] if best is not None else self.current,
            candidates=[
                {k: r[k] for k in ("weights", "after", "gain", "applied")} for r in results
            ],
        )
        return results

    def rollback(self) -> dict[str, float]:
        """Restore the weighting that the last applied switch replaced.

        Returns:
            The restored (now current) weighting.

        Raises:
            OrchestrationError: there is no previous weighting to restore.
        """
        if not self._previous:
            raise OrchestrationError(
                "Nothing to roll back: no strategy switch has been applied (or the "
                f"{self.max_history} kept ones were all rolled back). Fix: check `previous` first."
            )
        replaced = self._current
        self._current = self._previous.pop()
        self._record(event="rollback", weights=self.current, replaced=dict(replaced))
        logger.info("strategy rollback: %s -> %s", replaced, self._current)
        return self.current

    def adopt_weightings(self, other: StrategyManager) -> None:
        """Take over ``other``'s live weighting, rollback stack and history; keep these settings."""
        self._current = other.current
        self._previous.extend(other.previous)
        self._history.extend(other.history)
        self._seq = other._seq

    # ---------------------------------------------------------------- persistence

    def to_dict(self) -> dict[str, Any]:
        """Return the whole state as a bounded, JSON-able dict (see :meth:`from_dict`)."""
        return {
            "kind": "StrategyManager",
            "version": _VERSION,
            "config": {
                "adaptation_threshold": self.adaptation_threshold,
                "min_effective_n": self.min_effective_n,
                "confidence": self.confidence,
                "success_weight": self.success_weight,
                "max_history": self.max_history,
            },
            "current": self.current,
            "previous": self.previous,
            "history": self.history,
            "seq": self._seq,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StrategyManager:
        """Rebuild a manager from :meth:`to_dict` output.

        Raises:
            ConfigurationError: the dict is not a valid manager state.
        """
        d = check_state("StrategyManager", d, _VERSION)
        try:
            sm = cls(d["current"], **dict(d["config"]))
            sm._previous.extend(_weights(w) for w in d["previous"])
            sm._history.extend(dict(h) for h in d["history"])
            sm._seq = int(d["seq"])
        except (KeyError, TypeError, ValueError) as exc:  # ConfigurationError is a ValueError
            raise bad_state("StrategyManager", exc) from exc
        return sm

    # ---------------------------------------------------------------- internals

    def _judge(
        self, w: dict[str, float], before: ReplayEstimate, after: ReplayEstimate
    ) -> dict[str, Any]:
        gain = None if before.value is None or after.value is None else after.value - before.value
        stderr = math.hypot(before.stderr or 0.0, after.stderr or 0.0)
        support = min(before.effective_n, after.effective_n)
        if w == self._current:
            reason = "same as the current weighting"
        elif gain is None or support < self.min_effective_n:
            reason = (
                f"too little logged support (effective n {support:.1f} < "
                f"min_effective_n={self.min_effective_n:g})"
            )
        elif gain < self.adaptation_threshold - _TOL:
            reason = f"gain below adaptation_threshold={self.adaptation_threshold:g}"
        elif gain - self.confidence * stderr <= 0.0:
            reason = f"gain not significant (stderr {stderr:.4f}, confidence={self.confidence:g})"
        else:
            reason = _PASSED
        return {
            "weights": w,
            "before": before.value,
            "after": after.value,
            "gain": gain,
            "stderr": stderr,
            "matched_before": before.matched,
            "matched_after": after.matched,
            "effective_n": support,
            "applied": False,
            "reason": reason,
        }

    def _record(self, **entry: Any) -> None:
        self._seq += 1
        self._history.append({"seq": self._seq, **entry})


_PASSED = "passed"


def neighbour_weightings(weights: Mapping[str, float], step: float = 0.1) -> list[dict[str, float]]:
    """Candidate weightings next to ``weights``: one per factor, shifting ``step`` of mass to it.

    Each candidate is ``(1 - step) * weights + step * e_f`` for a factor ``f`` (so it still sums
    to 1); factors already at weight 1 yield no candidate.

    Args:
        weights: the current weighting over ``FACTORS``.
        step: the share moved, in (0, 1].

    Returns:
        Up to five weightings, in ``FACTORS`` order of the favoured factor.

    Raises:
        ConfigurationError: bad weights or step.

    Example:
        >>> len(neighbour_weightings({"skills": 0.4, "resources": 0.1, "workload": 0.2,
        ...                           "deadline": 0.2, "collaboration": 0.1}))
        5
    """
    w = _weights(weights)
    step = check_number("step", step, 0.0, 1.0, open_low=True)
    out = []
    for f in FACTORS:
        if w[f] >= 1.0:
            continue
        cand = {g: (1.0 - step) * v + (step if g == f else 0.0) for g, v in w.items()}
        total = sum(cand.values())  # renormalise away float drift so validation never trips
        out.append({g: v / total for g, v in cand.items()})
    return out


def _weights(weights: Mapping[str, float]) -> dict[str, float]:
    return dict(zip(FACTORS, validate_weights(weights), strict=True))
