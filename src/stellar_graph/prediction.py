"""Completion-time prediction with calibrated 90% intervals.

Every allocation carries a predicted duration and an interval learned from past (estimated, actual)
outcomes. The score is the log overrun ``log(actual / estimated)``; an interval is the estimate
times ``exp`` of two order statistics of recent scores (split conformal prediction), so it holds
its nominal coverage for any ratio distribution as long as outcomes are exchangeable.

* **Source.** The agent's own window once it has ``min_agent_history`` outcomes; else the pooled
  window of all agents once it has ``n_min`` outcomes (19 at 90%); else a log-normal prior.
* **Ranks.** Equal-tailed, ``a = (1 - coverage) / 2`` per tail: the upper bound is the
  ``ceil((n+1)(1-a))``-th smallest score and the lower bound the ``floor((n+1)a)``-th smallest
  (the symmetric order statistic). Below ``n_min`` the upper rank exceeds ``n``: no
  distribution-free interval exists, hence the prior.
* **Drift.** Adaptive Conformal Inference (Gibbs & Candès, NeurIPS 2021) runs per tail and per
  window: ``a_{t+1} = a_t + gamma * (a - err_t)``, ``err_t`` being whether that window's interval
  (the one it would have given before the outcome) missed on that side. ``a_t`` is clipped to
  ``[0, 0.5]`` and ranks to ``[1, n]`` so bounds stay finite (a deadline factor cannot be
  infinite); the long-run guarantee therefore holds unless outcomes keep beating the window's
  extreme, which the misses in :meth:`CompletionPredictor.coverage_report` then show.
* **Prior.** ``log(actual / estimated) ~ N(log 1.16, 0.5**2)``: median overrun 16%, mean overrun
  ``1.16 * exp(0.125) - 1 ~ 31%`` (Jørgensen's ~30% average software-effort overrun). Such
  intervals carry ``method="prior"`` and no coverage guarantee.

The state is a bounded, JSON-able dict (sliding windows of ``window`` scores per agent and
pooled) so the lead can persist it in the LangGraph Store. Not thread-safe.
"""

from __future__ import annotations

import bisect
import logging
import math
import numbers
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any, Literal

import numpy as np

from stellar_graph.errors import ConfigurationError, InvalidInputError

__all__ = [
    "DEFAULT_PRIOR_LOG_MEAN",
    "DEFAULT_PRIOR_LOG_SD",
    "CompletionPredictor",
    "Interval",
    "InvalidDurationError",
    "min_calibration_size",
]

logger = logging.getLogger(__name__)

DEFAULT_PRIOR_LOG_MEAN = math.log(1.16)
"""Prior median overrun of 16% (log scale)."""
DEFAULT_PRIOR_LOG_SD = 0.5
"""Prior spread of log(actual / estimated)."""

_STATE_VERSION = 1
_EPS = 1e-9  # (n+1)*(1-a) is often an integer up to float rounding; never let that shift a rank
_SOURCES = ("agent", "pooled", "prior")
_HIT, _LOW, _HIGH = 0, 1, 2
_ALERT_MIN_N = 100  # below this a recent-coverage dip is mostly calibration luck

Method = Literal["conformal", "prior"]
Source = Literal["agent", "pooled", "prior"]


class InvalidDurationError(InvalidInputError):
    """A duration is not a positive finite number of minutes (also a ``ValueError``)."""


@dataclass(frozen=True)
class Interval:
    """A predicted completion time with its interval.

    Attributes:
        median_minutes: predicted duration (estimate times the median overrun).
        lower_minutes: lower bound of the interval.
        upper_minutes: upper bound; ``upper_minutes / estimate`` is the deadline factor.
        coverage: nominal coverage, e.g. 0.9.
        method: ``"conformal"`` (distribution-free) or ``"prior"`` (model-based, no guarantee).
        n_calibration: number of past outcomes the interval was computed from (0 for the prior).
        source: ``"agent"``, ``"pooled"`` (all agents) or ``"prior"``.
    """

    median_minutes: float
    lower_minutes: float
    upper_minutes: float
    coverage: float
    method: Method
    n_calibration: int
    source: Source

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a plain JSON-able dict."""
        return asdict(self)


def min_calibration_size(coverage: float) -> int:
    """Smallest window size for which an equal-tailed conformal interval is finite.

    Args:
        coverage: nominal two-sided coverage in (0, 1).

    Returns:
        The smallest ``n`` with ``ceil((n+1)(1 - a)) <= n``, ``a = (1 - coverage) / 2``
        (19 for 90%, 39 for 95%).
    """
    tail = (1.0 - coverage) / 2.0
    return max(1, math.ceil((1.0 - tail) / tail - _EPS))


class _Window:
    """Last ``size`` log-ratios in arrival order and sorted, with per-tail ACI levels."""

    __slots__ = ("alpha_lower", "alpha_upper", "bounds", "factors", "order", "sorted")

    def __init__(self, size: int, values: Iterable[float], alpha_lower: float, alpha_upper: float):
        self.order: deque[float] = deque(values, maxlen=size)
        self.sorted: list[float] = sorted(self.order)
        self.alpha_lower = alpha_lower
        self.alpha_upper = alpha_upper
        self.bounds = (-math.inf, 0.0, math.inf)
        self.factors = (0.0, 1.0, math.inf)
        self.refresh()

    def __len__(self) -> int:
        return len(self.order)

    def push(self, value: float) -> None:
        if len(self.order) == self.order.maxlen:
            del self.sorted[bisect.bisect_left(self.sorted, self.order[0])]
        self.order.append(value)
        bisect.insort(self.sorted, value)

    def log_bounds(self) -> tuple[float, float, float]:
        """(lower, median, upper) log-ratio; needs at least one value."""
        s, n = self.sorted, len(self.sorted)
        k_hi = min(n, math.ceil((n + 1) * (1.0 - self.alpha_upper) - _EPS))
        k_lo = max(1, math.floor((n + 1) * self.alpha_lower + _EPS))
        mid = n // 2
        med = s[mid] if n % 2 else 0.5 * (s[mid - 1] + s[mid])
        return min(s[k_lo - 1], med), med, max(s[k_hi - 1], med)

    def refresh(self) -> None:
        """Recompute the cached log bounds and multiplicative (lower, median, upper) factors."""
        if self.order:
            self.bounds = self.log_bounds()
            self.factors = _exp3(self.bounds)

    def aci_update(self, score: float, target: float, gamma: float) -> None:
        """Apply one ACI step per tail, judged by the bounds held before ``score`` arrived."""
        lo, _, hi = self.bounds
        self.alpha_lower = min(0.5, max(0.0, self.alpha_lower + gamma * (target - (score < lo))))
        self.alpha_upper = min(0.5, max(0.0, self.alpha_upper + gamma * (target - (score > hi))))

    def to_dict(self) -> dict[str, Any]:
        return {
            "log_ratios": list(self.order),
            "alpha_lower": self.alpha_lower,
            "alpha_upper": self.alpha_upper,
        }


@dataclass(frozen=True)
class _Fixed:
    """The prior's log bounds and factors, shaped like a window's."""

    bounds: tuple[float, float, float]
    factors: tuple[float, float, float]


class _FactorCache:
    """Last ``upper_factors`` result, patched in place as outcomes arrive."""

    __slots__ = ("arr", "ids", "own", "positions")

    def __init__(self, ids: tuple[str, ...], arr: np.ndarray, own: np.ndarray):
        self.ids, self.arr, self.own = ids, arr, own
        self.positions: dict[str, list[int]] = {}
        for i, agent_id in enumerate(ids):
            self.positions.setdefault(agent_id, []).append(i)


class CompletionPredictor:
    """Learns per-agent overrun ratios and predicts completion times with conformal intervals.

    Example:
        >>> p = CompletionPredictor()
        >>> p.predict("alice", 60.0).method
        'prior'
    """

    def __init__(
        self,
        *,
        coverage: float = 0.9,
        window: int = 200,
        min_agent_history: int = 19,
        aci_gamma: float = 0.01,
        prior_log_mean: float = DEFAULT_PRIOR_LOG_MEAN,
        prior_log_sd: float = DEFAULT_PRIOR_LOG_SD,
    ) -> None:
        """Create an empty predictor.

        Args:
            coverage: nominal two-sided coverage, in (0, 1); each tail gets ``(1 - coverage) / 2``.
            window: outcomes kept per agent and pooled (sliding window); at least ``n_min``.
            min_agent_history: outcomes an agent needs before its own window is used; raised to
                ``n_min`` (19 at 90%) if lower, since no finite conformal interval exists below it.
            aci_gamma: ACI step size; 0 gives plain sliding-window split conformal.
            prior_log_mean: prior mean of ``log(actual / estimated)`` (default ``log 1.16``).
            prior_log_sd: prior standard deviation of ``log(actual / estimated)``.

        Raises:
            ConfigurationError: an argument is out of range.
        """
        _check_number("coverage", coverage, lambda x: 0.0 < x < 1.0, "in (0, 1), e.g. 0.9")
        self.coverage = float(coverage)
        self.n_min = min_calibration_size(self.coverage)
        _check_int("window", window, self.n_min, "the minimum conformal calibration size")
        _check_int("min_agent_history", min_agent_history, 1, "1")
        if min_agent_history > window:
            raise ConfigurationError(
                f"min_agent_history={min_agent_history!r} exceeds window={window!r}: the agent "
                "window could never fill. Fix: lower min_agent_history or raise window.",
                field="min_agent_history",
                value=min_agent_history,
            )
        _check_number("aci_gamma", aci_gamma, lambda x: 0.0 <= x <= 1.0, "in [0, 1], e.g. 0.01")
        _check_number("prior_log_mean", prior_log_mean, lambda x: True, "(log scale)")
        _check_number("prior_log_sd", prior_log_sd, lambda x: x > 0.0, "> 0 (log scale)")
        self.window = int(window)
        self.min_agent_history = int(min_agent_history)
        self.aci_gamma = float(aci_gamma)
        self.prior_log_mean = float(prior_log_mean)
        self.prior_log_sd = float(prior_log_sd)
        self._tail = (1.0 - self.coverage) / 2.0
        self._min_agent = max(self.min_agent_history, self.n_min)
        z = NormalDist().inv_cdf(1.0 - self._tail)
        mu, sd = self.prior_log_mean, self.prior_log_sd
        bounds = (mu - z * sd, mu, mu + z * sd)
        self._prior = _Fixed(bounds, _exp3(bounds))
        self._pooled = self._new_window()
        self._agents: dict[str, _Window] = {}
        self._counts = {s: [0, 0, 0] for s in _SOURCES}  # outcomes, lower misses, upper misses
        self._recent: deque[int] = deque(maxlen=self.window)
        self._recent_counts = [0, 0, 0]  # hits, lower misses, upper misses in _recent
        self._alerting = False
        self._cache: _FactorCache | None = None
        self._dirty: set[str] = set()
        self._shared_dirty = False

    # ------------------------------------------------------------------ learning

    def observe(self, agent_id: str, estimated_minutes: float, actual_minutes: float) -> None:
        """Record one finished task and update the windows and the ACI levels.

        The online error is that of the interval :meth:`predict` would have returned just before
        this call; it feeds :meth:`coverage_report`. Each window with at least ``n_min`` outcomes
        (the agent's and the pooled one) also takes one ACI step using its own interval's misses.

        Args:
            agent_id: the agent that did the task.
            estimated_minutes: the estimate the prediction was made from (> 0).
            actual_minutes: how long the task really took (> 0).

        Raises:
            InvalidDurationError: a duration is not a positive finite number.
            InvalidInputError: ``agent_id`` is not a non-empty string.
        """
        _check_agent_id(agent_id)
        est = _check_duration("estimated_minutes", estimated_minutes)
        act = _check_duration("actual_minutes", actual_minutes)
        score = math.log(act) - math.log(est)
        used, source, _ = self._select(agent_id)
        lo, _, hi = used.bounds
        self._record(source, _LOW if score < lo else _HIGH if score > hi else _HIT)
        agent = self._agents.get(agent_id)
        if agent is None:
            agent = self._agents[agent_id] = self._new_window()
        for win in (agent, self._pooled):
            if len(win) >= self.n_min and self.aci_gamma > 0.0:
                win.aci_update(score, self._tail, self.aci_gamma)
            win.push(score)
            win.refresh()
        if source != "agent" and len(agent) >= self._min_agent:
            logger.debug("agent %r now has its own conformal interval (n=%d)", agent_id, len(agent))
        self._dirty.add(agent_id)
        self._shared_dirty = True

    def forget_agent(self, agent_id: str) -> bool:
        """Drop an agent's window (e.g. when it is deregistered); the pooled window keeps its data.

        Args:
            agent_id: the agent to forget.

        Returns:
            Whether the agent had a window.
        """
        self._dirty.add(agent_id)
        return self._agents.pop(agent_id, None) is not None

    # ---------------------------------------------------------------- prediction

    def predict(self, agent_id: str, estimated_minutes: float) -> Interval:
        """Predict the completion time of a task with a ``coverage`` interval.

        Args:
            agent_id: the agent the task would go to (unknown agents use the pooled window).
            estimated_minutes: the task's estimated duration (> 0).

        Returns:
            The interval; ``method="prior"`` marks a model-based fallback without guarantee.

        Raises:
            InvalidDurationError: ``estimated_minutes`` is not positive and finite.
            InvalidInputError: ``agent_id`` is not a non-empty string.
        """
        _check_agent_id(agent_id)
        est = _check_duration("estimated_minutes", estimated_minutes)
        used, source, n = self._select(agent_id)
        lo, med, hi = used.factors
        return Interval(
            median_minutes=est * med,
            lower_minutes=est * lo,
            upper_minutes=est * hi,
            coverage=self.coverage,
            method="prior" if source == "prior" else "conformal",
            n_calibration=n,
            source=source,
        )

    def upper_factor(self, agent_id: str) -> float:
        """Return ``upper_minutes / estimated_minutes`` for the agent (the deadline factor).

        Args:
            agent_id: the agent.

        Returns:
            The multiplier (> 0) that turns an estimate into the interval's upper bound.

        Raises:
            InvalidInputError: ``agent_id`` is not a non-empty string.
        """
        _check_agent_id(agent_id)
        return self._select(agent_id)[0].factors[2]

    def upper_factors(self, agent_ids: Sequence[str]) -> np.ndarray:
        """Vectorised :meth:`upper_factor`, cached between calls with the same id sequence.

        Only the agents observed since the last call (and the shared pooled or prior factor) are
        recomputed, so repeated calls for a fixed pool are O(changes) plus one array copy.

        Args:
            agent_ids: agent ids, in the scorer's column order (repeats allowed).

        Returns:
            A new float64 array of upper factors, aligned with ``agent_ids``.
        """
        ids = tuple(agent_ids)
        cache = self._cache
        if cache is None or cache.ids != ids:
            self._cache = cache = self._build_cache(ids)
        else:
            self._patch_cache(cache)
        self._dirty.clear()
        self._shared_dirty = False
        return cache.arr.copy()

    # ---------------------------------------------------------------- reporting

    def coverage_report(self) -> dict[str, Any]:
        """Summarise the online coverage of the intervals predicted so far.

        Returns:
            ``{"nominal", "overall", "by_source": {source: ...}, "recent", "pooled_aci",
            "n_agents"}``; each summary has ``n``, ``coverage``, ``lower_miss`` and
            ``upper_miss`` (rates, ``None`` when ``n`` is 0). ``recent`` covers the last
            ``window`` outcomes; its ``alert`` turns on when it holds at least 100 outcomes and
            its coverage is more than 5 points below nominal (85% at 90%; a warning is logged)
            and off again once coverage is back within 3 points.
        """
        by_source = {s: _summary(*self._counts[s]) for s in _SOURCES}
        total = [sum(self._counts[s][i] for s in _SOURCES) for i in range(3)]
        recent = _summary(len(self._recent), *self._recent_counts[1:])
        recent["alert"] = self._alerting
        return {
            "nominal": self.coverage,
            "overall": _summary(*total),
            "by_source": by_source,
            "recent": recent,
            "pooled_aci": {
                "alpha_lower": self._pooled.alpha_lower,
                "alpha_upper": self._pooled.alpha_upper,
            },
            "n_agents": len(self._agents),
        }

    # ---------------------------------------------------------------- persistence

    def to_dict(self) -> dict[str, Any]:
        """Return the whole state as a bounded, JSON-able dict (see :meth:`from_dict`)."""
        return {
            "version": _STATE_VERSION,
            "config": {
                "coverage": self.coverage,
                "window": self.window,
                "min_agent_history": self.min_agent_history,
                "aci_gamma": self.aci_gamma,
                "prior_log_mean": self.prior_log_mean,
                "prior_log_sd": self.prior_log_sd,
            },
            "pooled": self._pooled.to_dict(),
            "agents": {a: w.to_dict() for a, w in self._agents.items()},
            "counts": {s: list(c) for s, c in self._counts.items()},
            "recent": list(self._recent),
            "alerting": self._alerting,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CompletionPredictor:
        """Rebuild a predictor from :meth:`to_dict` output; predictions are identical.

        Args:
            d: a state dict, e.g. loaded back from JSON.

        Returns:
            The restored predictor.

        Raises:
            ConfigurationError: the dict is not a valid predictor state.
        """
        if not isinstance(d, Mapping) or d.get("version") != _STATE_VERSION:
            got = d.get("version") if isinstance(d, Mapping) else type(d).__name__
            raise ConfigurationError(
                f"Not a CompletionPredictor state (version {got!r}, expected {_STATE_VERSION}). "
                "Fix: pass the dict returned by CompletionPredictor.to_dict().",
                field="version",
                value=got,
            )
        try:
            pred = cls(**dict(d["config"]))
            pred._pooled = pred._window_from(d["pooled"], "pooled")
            agents = d.get("agents", {})
            pred._agents = {str(a): pred._window_from(w, f"agents.{a}") for a, w in agents.items()}
            for s in _SOURCES:
                counts = [int(x) for x in d.get("counts", {}).get(s, (0, 0, 0))]
                if len(counts) != 3 or min(counts) < 0:
                    raise ValueError(f"counts.{s}={counts!r} must be 3 non-negative integers")
                pred._counts[s] = counts
            recent = [int(x) for x in d.get("recent", ())]
            if any(x not in (_HIT, _LOW, _HIGH) for x in recent):
                raise ValueError(f"recent outcome codes must be 0, 1 or 2, got {recent[:10]!r}")
            for code in recent[-pred.window :]:
                pred._push_recent(code)
            pred._alerting = bool(d.get("alerting", False))
        except ConfigurationError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigurationError(
                f"Invalid CompletionPredictor state: {exc!s}. "
                "Fix: pass the dict returned by CompletionPredictor.to_dict(), unmodified.",
            ) from exc
        return pred

    # ---------------------------------------------------------------- internals

    def _new_window(self) -> _Window:
        return _Window(self.window, (), self._tail, self._tail)

    def _window_from(self, raw: Mapping[str, Any], where: str) -> _Window:
        values = [float(v) for v in raw["log_ratios"]]
        alphas = float(raw["alpha_lower"]), float(raw["alpha_upper"])
        if not all(math.isfinite(v) for v in values) or len(values) > self.window:
            raise ValueError(f"{where}.log_ratios must hold <= {self.window} finite numbers")
        if not all(0.0 <= a <= 0.5 for a in alphas):
            raise ValueError(f"{where} ACI levels {alphas!r} must lie in [0, 0.5]")
        return _Window(self.window, values, *alphas)

    def _select(self, agent_id: str) -> tuple[_Window | _Fixed, Source, int]:
        """The window (or prior), source and calibration size used for ``agent_id``."""
        win = self._agents.get(agent_id)
        if win is not None and len(win) >= self._min_agent:
            return win, "agent", len(win)
        return self._shared()

    def _shared(self) -> tuple[_Window | _Fixed, Source, int]:
        """What an agent without enough history of its own gets: pooled, else the prior."""
        if len(self._pooled) >= self.n_min:
            return self._pooled, "pooled", len(self._pooled)
        return self._prior, "prior", 0

    def _record(self, source: Source, code: int) -> None:
        counts = self._counts[source]
        counts[0] += 1
        if code != _HIT:
            counts[code] += 1
        self._push_recent(code)
        n = len(self._recent)
        recent_coverage = self._recent_counts[_HIT] / n
        if not self._alerting and n >= _ALERT_MIN_N and recent_coverage < self.coverage - 0.05:
            self._alerting = True
            logger.warning(
                "completion intervals under-cover: %.1f%% of the last %d outcomes inside "
                "(nominal %.0f%%); the ratio distribution may have shifted",
                100 * recent_coverage,
                n,
                100 * self.coverage,
            )
        elif self._alerting and recent_coverage >= self.coverage - 0.03:
            self._alerting = False
            logger.info("completion interval coverage recovered to %.1f%%", 100 * recent_coverage)

    def _push_recent(self, code: int) -> None:
        if len(self._recent) == self._recent.maxlen:
            self._recent_counts[self._recent[0]] -= 1
        self._recent.append(code)
        self._recent_counts[code] += 1

    def _build_cache(self, ids: tuple[str, ...]) -> _FactorCache:
        selected = [self._select(a) for a in ids]
        arr = np.fromiter((w.factors[2] for w, _, _ in selected), dtype=np.float64, count=len(ids))
        own = np.fromiter((s == "agent" for _, s, _ in selected), dtype=bool, count=len(ids))
        return _FactorCache(ids, arr, own)

    def _patch_cache(self, cache: _FactorCache) -> None:
        if self._shared_dirty:
            # pooled and prior agents all share one factor; the agents below may override
            cache.arr[~cache.own] = self._shared()[0].factors[2]
        for agent_id in self._dirty:
            idx = cache.positions.get(agent_id)
            if idx is not None:
                used, source, _ = self._select(agent_id)
                cache.arr[idx] = used.factors[2]
                cache.own[idx] = source == "agent"


def _exp3(b: tuple[float, float, float]) -> tuple[float, float, float]:
    return math.exp(b[0]), math.exp(b[1]), math.exp(b[2])


def _summary(n: int, low: int, high: int) -> dict[str, Any]:
    if n == 0:
        return {"n": 0, "coverage": None, "lower_miss": None, "upper_miss": None}
    return {
        "n": n,
        "coverage": 1.0 - (low + high) / n,
        "lower_miss": low / n,
        "upper_miss": high / n,
    }


def _check_duration(field: str, value: object) -> float:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    x = float(value) if ok else math.nan  # type: ignore[arg-type]
    if not (math.isfinite(x) and x > 0.0):
        raise InvalidDurationError(
            f"{field}={value!r} is not a valid duration. "
            "Fix: pass a positive, finite number of minutes.",
            errors=[
                {"field": field, "value": value, "message": "must be a positive finite number"}
            ],
        )
    return x


def _check_agent_id(agent_id: object) -> None:
    if not isinstance(agent_id, str) or not agent_id:
        raise InvalidInputError(
            f"agent_id={agent_id!r} is not a valid agent id. Fix: pass a non-empty string.",
            errors=[{"field": "agent_id", "value": agent_id, "message": "must be a non-empty str"}],
        )


def _check_number(field: str, value: object, valid: Callable[[float], bool], need: str) -> None:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if not (ok and math.isfinite(float(value)) and valid(float(value))):  # type: ignore[arg-type]
        raise ConfigurationError(
            f"{field}={value!r} is invalid. Fix: pass a finite number {need}.",
            field=field,
            value=value,
        )


def _check_int(field: str, value: object, low: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ConfigurationError(
            f"{field}={value!r} is invalid. Fix: pass an integer >= {low} ({what}).",
            field=field,
            value=value,
        )
