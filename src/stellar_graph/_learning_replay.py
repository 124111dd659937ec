"""`ReplayBuffer` of logged decisions and the off-policy estimate `evaluate_weights`."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from stellar_graph._learning_checks import bad_state, check_int, check_number, check_state
from stellar_graph.errors import InvalidInputError
from stellar_graph.models import FACTORS
from stellar_graph.scoring import validate_weights

__all__ = ["ReplayBuffer", "ReplayEstimate", "evaluate_weights"]

_VERSION = 1
_NF = len(FACTORS)
_DECIMALS = 6


class _Entry(NamedTuple):
    candidates: tuple[str, ...]
    factors: tuple[tuple[float, ...], ...]
    chosen: int
    propensity: float
    reward: float
    estimates: tuple[float, ...] | None


class _Arrays(NamedTuple):
    factors: np.ndarray  # (N, K, F), zero-padded
    valid: np.ndarray  # (N, K) bool
    estimates: np.ndarray  # (N, K), 0 where not logged
    chosen: np.ndarray
    propensity: np.ndarray
    reward: np.ndarray
    age_weight: np.ndarray


class ReplayBuffer:
    """A bounded ring of logged decisions for offline evaluation of score weightings.

    Each entry is one decision: the factor vectors (``FACTORS`` order) of every feasible
    candidate, the chosen index, the probability the live policy had of choosing it
    (propensity), the reward observed (success, or quality), and optionally the candidates' ids
    and learned success estimates at decision time. When full, the oldest entry is dropped.
    Factors and estimates are stored rounded to 6 decimals (about 250 bytes of JSON per entry
    with 5 candidates, so ~2.5 MB for the default 10,000 entries).

    Old evidence fades: an entry ``age`` entries older than the newest weighs ``decay ** age``
    in :func:`evaluate_weights` (under the config mapping, the oldest entry of a full buffer keeps
    ``learning_decay_factor ** 20``, about 36% for 0.95).

    Example:
        >>> buf = ReplayBuffer(2)
        >>> buf.add([[1, 0, 0, 0, 0], [0, 1, 0, 0, 0]], chosen=0, propensity=0.5, reward=1.0)
        >>> len(buf)
        1
    """

    def __init__(self, capacity: int = 10_000, *, decay: float = 1.0) -> None:
        """Create an empty buffer.

        Args:
            capacity: entries kept, >= 1 (``experience_replay_buffer_size``).
            decay: weight factor per entry of age, in (0, 1].

        Raises:
            ConfigurationError: an argument is out of range.
        """
        self.capacity = check_int("experience_replay_buffer_size", capacity, 1)
        self.decay = check_number("replay decay", decay, 0.0, 1.0, open_low=True)
        self._entries: deque[_Entry] = deque(maxlen=self.capacity)
        self._arrays: _Arrays | None = None

    def __len__(self) -> int:
        return len(self._entries)

    def add(
        self,
        factors: npt.ArrayLike,
        chosen: int,
        propensity: float,
        reward: float,
        *,
        candidates: Sequence[str] = (),
        estimates: npt.ArrayLike | None = None,
    ) -> None:
        """Log one decision and its outcome.

        Args:
            factors: (K, 5) factor values of the K candidates, in ``FACTORS`` order.
            chosen: index of the candidate that was picked.
            propensity: probability the live policy had of picking it, in (0, 1].
            reward: observed reward in [0, 1].
            candidates: the candidates' ids (K of them), or empty.
            estimates: the learned success estimate of each candidate at decision time, or None.

        Raises:
            InvalidInputError: shapes or values out of range.
        """
        rows = _matrix("factors", factors)
        k = len(rows)
        if (
            isinstance(chosen, bool)
            or not isinstance(chosen, (int, np.integer))
            or not 0 <= chosen < k
        ):
            raise _input_error("chosen", chosen, f"an index into the {k} candidates")
        p = _unit("propensity", propensity, open_low=True)
        r = _unit("reward", reward)
        ids = tuple(str(c) for c in candidates)
        if ids and len(ids) != k:
            raise _input_error("candidates", candidates, f"{k} ids, one per factor row")
        est = None
        if estimates is not None:
            est = tuple(
                np.round(np.asarray(estimates, dtype=float).reshape(-1), _DECIMALS).tolist()
            )
            if len(est) != k or not all(0.0 <= x <= 1.0 for x in est):
                raise _input_error("estimates", estimates, f"{k} numbers in [0, 1]")
        self._entries.append(_Entry(ids, rows, int(chosen), p, r, est))
        self._arrays = None

    def clear(self) -> None:
        """Drop every entry."""
        self._entries.clear()
        self._arrays = None

    def entries(self) -> list[dict[str, Any]]:
        """The entries, oldest first, as JSON-able dicts."""
        return [e._asdict() | {"factors": [list(r) for r in e.factors]} for e in self._entries]

    def age_weights(self) -> np.ndarray:
        """Weight of each entry, oldest first: ``decay ** age`` (the newest weighs 1)."""
        n = len(self._entries)
        out: np.ndarray = self.decay ** np.arange(n - 1, -1, -1, dtype=float)
        return out

    def arrays(self) -> _Arrays:
        """The entries as padded arrays (cached until the next change)."""
        if self._arrays is None:
            self._arrays = self._build_arrays()
        return self._arrays

    # ---------------------------------------------------------------- persistence

    def to_dict(self) -> dict[str, Any]:
        """Return the whole buffer as a bounded, JSON-able dict (see :meth:`from_dict`)."""
        return {
            "kind": "ReplayBuffer",
            "version": _VERSION,
            "config": {"capacity": self.capacity, "decay": self.decay},
            "entries": [
                [
                    list(e.candidates),
                    [list(r) for r in e.factors],
                    e.chosen,
                    e.propensity,
                    e.reward,
                    None if e.estimates is None else list(e.estimates),
                ]
                for e in self._entries
            ],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ReplayBuffer:
        """Rebuild a buffer from :meth:`to_dict` output.

        Raises:
            ConfigurationError: the dict is not a valid buffer state.
        """
        d = check_state("ReplayBuffer", d, _VERSION)
        try:
            buf = cls(**dict(d["config"]))
            for cands, factors, chosen, prop, reward, est in d["entries"]:
                buf.add(factors, int(chosen), prop, reward, candidates=cands, estimates=est)
        except (KeyError, TypeError, ValueError) as exc:  # ConfigurationError is a ValueError
            raise bad_state("ReplayBuffer", exc) from exc
        return buf

    # ---------------------------------------------------------------- internals

    def _build_arrays(self) -> _Arrays:
        n = len(self._entries)
        kmax = max((len(e.factors) for e in self._entries), default=1)
        factors = np.zeros((n, kmax, _NF))
        valid = np.zeros((n, kmax), dtype=bool)
        estimates = np.zeros((n, kmax))
        for i, e in enumerate(self._entries):
            k = len(e.factors)
            factors[i, :k] = e.factors
            valid[i, :k] = True
            if e.estimates is not None:
                estimates[i, :k] = e.estimates
        return _Arrays(
            factors,
            valid,
            estimates,
            np.array([e.chosen for e in self._entries], dtype=np.intp),
            np.array([e.propensity for e in self._entries], dtype=float),
            np.array([e.reward for e in self._entries], dtype=float),
            self.age_weights(),
        )


@dataclass(frozen=True)
class ReplayEstimate:
    """Off-policy estimate of the reward a weighting would have earned on the logged decisions.

    Attributes:
        value: estimated mean reward (success rate) in [0, 1]; ``None`` when no logged decision
            matches the weighting's choice.
        matched: logged decisions where the weighting picks the logged choice.
        logged: decisions in the buffer.
        effective_n: Kish effective sample size of the matched, weighted decisions.
        stderr: approximate standard error of ``value`` (delta method; ``None`` with no match).
    """

    value: float | None
    matched: int
    logged: int
    effective_n: float
    stderr: float | None

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a JSON-able dict."""
        return asdict(self)


def evaluate_weights(
    buffer: ReplayBuffer, weights: Mapping[str, float], *, success_weight: float = 0.0
) -> ReplayEstimate:
    """Estimate offline the success rate a score weighting would achieve.

    The weighting's policy picks, in each logged decision, the candidate with the highest
    ``(1 - success_weight) * (factors . weights) + success_weight * estimate`` (lowest index on
    ties; entries without logged estimates count 0, so only the factors decide). The estimate is
    the self-normalised inverse-propensity average of the rewards of the matching decisions,
    each weighted by ``age_weight / propensity``. With uniformly random logging this is exactly
    the replay method of Li, Chu, Langford & Wang (WSDM 2011), unbiased per accepted event; with
    known non-uniform propensities it is its standard generalisation (consistent; its bias shrinks
    as 1/n).

    Args:
        buffer: the logged decisions.
        weights: factor -> weight over ``FACTORS``, summing to 1.
        success_weight: blend with the logged success estimates, in [0, 1] (use the live policy's).

    Returns:
        The estimate with its support (matched decisions, effective sample size, stderr).

    Raises:
        ConfigurationError: bad weights or ``success_weight``.
    """
    w = np.asarray(validate_weights(weights), dtype=float)
    lam = check_number("success_weight", success_weight, 0.0, 1.0)
    n = len(buffer)
    if n == 0:
        return ReplayEstimate(None, 0, 0, 0.0, None)
    arr = buffer.arrays()
    scores = (1.0 - lam) * (arr.factors @ w) + lam * arr.estimates
    scores[~arr.valid] = -np.inf
    match = np.argmax(scores, axis=1) == arr.chosen
    iw = np.where(match, arr.age_weight / arr.propensity, 0.0)
    total = float(iw.sum())
    if total <= 0.0:
        return ReplayEstimate(None, 0, n, 0.0, None)
    value = float(iw @ arr.reward) / total
    ess = total**2 / float(iw @ iw)
    stderr = math.sqrt(float(iw**2 @ (arr.reward - value) ** 2)) / total
    return ReplayEstimate(value, int(match.sum()), n, ess, stderr)


def _matrix(field: str, value: npt.ArrayLike) -> tuple[tuple[float, ...], ...]:
    try:
        m = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise _input_error(field, value, f"a (K, {_NF}) array of factor values") from None
    if m.ndim != 2 or m.shape[0] < 1 or m.shape[1] != _NF or not np.isfinite(m).all():
        raise _input_error(field, value, f"a (K, {_NF}) array of finite factor values, K >= 1")
    # Six decimals are far below any meaningful factor difference and halve the stored JSON.
    return tuple(tuple(row) for row in np.round(m, _DECIMALS).tolist())


def _unit(field: str, value: object, *, open_low: bool = False) -> float:
    try:
        x = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        x = math.nan
    if not (x <= 1.0 and (x > 0.0 if open_low else x >= 0.0)):
        raise _input_error(field, value, "a number in (0, 1]" if open_low else "a number in [0, 1]")
    return x


def _input_error(field: str, value: object, need: str) -> InvalidInputError:
    return InvalidInputError(
        f"{field}={value!r} is invalid. Fix: pass {need}.",
        errors=[{"field": field, "value": value, "message": f"must be {need}"}],
    )
