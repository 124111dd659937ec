"""`ExplorationPolicy`: which feasible candidate to pick, and with what probability."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from stellar_graph._learning_checks import (
    MODES,
    STRATEGIES,
    bad_state,
    check_choice,
    check_int,
    check_number,
    check_skills,
    check_state,
)
from stellar_graph._learning_model import ProficiencyModel
from stellar_graph.errors import ConfigurationError

__all__ = ["ExplorationPolicy"]

logger = logging.getLogger(__name__)

_VERSION = 1


class ExplorationPolicy:
    """Chooses one of the allocator's feasible candidates, blending its score with learning.

    Feasibility and capacity stay with the deterministic allocator: it passes only feasible
    candidates and their scores ``base`` (weighted factor sums in [0, 1]). In ``adaptive`` mode the
    policy ranks them by ``(1 - success_weight) * base + success_weight * theta``, where ``theta``
    is each candidate's success probability on the task's skills: a posterior draw (``thompson``)
    or the posterior mean (the epsilon strategies). With probability ``epsilon_t`` it instead picks
    a candidate uniformly, so that logged decisions keep a known, non-zero propensity for offline
    replay (target T16).

    ``epsilon_t`` for the ``t``-th decision among ``K`` candidates, with ``d = decay_constant``:

    * ``thompson``: ``max(min_exploration, min(exploration_rate, d*K/t))``;
    * ``epsilon_decay``: ``max(min_exploration, min(1, d*K/t))`` (B7's ε ∝ 1/t);
    * ``constant_epsilon``: ``exploration_rate`` always;
    * ``greedy``: 0.

    In ``static`` and ``dynamic`` modes the policy never explores and ignores the model: it picks
    the highest base score (lowest index on ties) with propensity 1.

    Example:
        >>> policy = ExplorationPolicy("greedy")
        >>> policy.choose(["a", "b"], [0.2, 0.9], ProficiencyModel(), [], np.random.default_rng(0))
        (1, 1.0)
    """

    def __init__(
        self,
        strategy: str = "thompson",
        *,
        mode: str = "adaptive",
        exploration_rate: float = 0.1,
        min_exploration: float | None = None,
        decay_constant: float = 5.0,
        success_weight: float = 0.5,
        propensity_samples: int = 32,
    ) -> None:
        """Create a policy.

        Args:
            strategy: one of ``thompson`` (default), ``epsilon_decay``, ``greedy``,
                ``constant_epsilon``.
            mode: ``adaptive`` learns and explores; ``static`` and ``dynamic`` never do.
            exploration_rate: the ceiling (``thompson``) or constant (``constant_epsilon``) of
                the uniform-exploration probability, in [0, 1].
            min_exploration: the floor kept forever for replay logging, in [0, exploration_rate];
                default ``exploration_rate / 10``.
            decay_constant: ``c`` in ``c*K/t``, > 0 (5 was best on the B7 bench).
            success_weight: weight of the learned success probability against the base score, in
                [0, 1]; 1 ignores the base score (a pure bandit), 0 ignores learning.
            propensity_samples: extra posterior draws used to estimate a Thompson decision's
                propensity, >= 0 (more draws, closer estimate; each costs K beta samples).

        Raises:
            ConfigurationError: an argument is out of range.
        """
        self.strategy = check_choice("strategy", strategy, STRATEGIES)
        self.mode = check_choice("orchestration_mode", mode, MODES)
        self.exploration_rate = check_number("exploration_rate", exploration_rate, 0.0, 1.0)
        floor = self.exploration_rate / 10.0 if min_exploration is None else min_exploration
        self.min_exploration = check_number("min_exploration", floor, 0.0, self.exploration_rate)
        self.decay_constant = check_number(
            "decay_constant", decay_constant, 0.0, 1e9, open_low=True
        )
        self.success_weight = check_number("success_weight", success_weight, 0.0, 1.0)
        self.propensity_samples = check_int("propensity_samples", propensity_samples, 0)
        self.t = 0  # decisions taken so far

    @property
    def explores(self) -> bool:
        """Whether the policy learns and explores (``adaptive`` mode)."""
        return self.mode == "adaptive"

    def epsilon(self, n_candidates: int, t: int | None = None) -> float:
        """Uniform-exploration probability of decision ``t`` (default: the next one) among ``n_candidates``."""
        if not self.explores or n_candidates <= 1:
            return 0.0
        t = self.t + 1 if t is None else max(1, t)
        decayed = self.decay_constant * n_candidates / t
        if self.strategy == "thompson":
            return max(self.min_exploration, min(self.exploration_rate, decayed))
        if self.strategy == "epsilon_decay":
            return max(self.min_exploration, min(1.0, decayed))
        if self.strategy == "constant_epsilon":
            return self.exploration_rate
        return 0.0

    def choose(
        self,
        candidate_agents: Sequence[str],
        base_scores: npt.ArrayLike,
        model: ProficiencyModel,
        skills: Sequence[str],
        rng: np.random.Generator,
    ) -> tuple[int, float]:
        """Pick one candidate.

        Args:
            candidate_agents: ids of the feasible candidates (at least one).
            base_scores: the allocator's score of each candidate, finite, same length.
            model: the learned success posteriors.
            skills: the task's required skills.
            rng: the random source (seed it for reproducible runs).

        Returns:
            ``(index, propensity)``: the chosen candidate and the probability that this policy
            picks it in this state (exact for the epsilon strategies, a Monte-Carlo estimate
            for ``thompson``; always > 0 unless a single candidate makes it exactly 1).

        Raises:
            ConfigurationError: no candidates, or scores that do not match them.
        """
        base = _check_candidates(candidate_agents, base_scores)
        if not self.explores or base.size == 1:
            self.t += 1
            return int(np.argmax(base)), 1.0
        alpha, beta = model.posteriors(candidate_agents, check_skills(skills))
        return self.choose_from_posteriors(base, alpha, beta, rng)

    def choose_from_posteriors(
        self,
        base_scores: npt.ArrayLike,
        alpha: npt.ArrayLike,
        beta: npt.ArrayLike,
        rng: np.random.Generator,
    ) -> tuple[int, float]:
        """:meth:`choose` given the candidates' Beta posteriors ``(alpha, beta)`` directly.

        Args:
            base_scores: the candidates' deterministic scores. alpha, beta: their posteriors,
                all > 0 (e.g. from :meth:`ProficiencyModel.posteriors`). rng: the random source.

        Returns:
            ``(index, propensity)`` as :meth:`choose`.

        Raises:
            ConfigurationError: mismatched lengths or non-finite values.
        """
        base = _check_candidates(range(np.size(base_scores)), base_scores)
        a, b = _check_posteriors(alpha, beta, base.size)
        self.t += 1
        k = base.size
        if not self.explores or k == 1:
            return int(np.argmax(base)), 1.0
        eps = self.epsilon(k, self.t)
        lam = self.success_weight
        if self.strategy == "thompson":
            theta = rng.beta(a, b, size=(self.propensity_samples + 1, k))
            winners = np.argmax((1.0 - lam) * base + lam * theta, axis=1)
            greedy_p = np.bincount(winners, minlength=k) / winners.size
            pick = int(winners[0])  # the first draw decides; all draws estimate the propensity
        else:
            pick = int(np.argmax((1.0 - lam) * base + lam * (a / (a + b))))
            greedy_p = np.zeros(k)
            greedy_p[pick] = 1.0
        if eps > 0.0 and rng.random() < eps:
            pick = int(rng.integers(k))
        propensity = eps / k + (1.0 - eps) * float(greedy_p[pick])
        return pick, propensity

    def blended_scores(
        self,
        candidate_agents: Sequence[str],
        base_scores: npt.ArrayLike,
        model: ProficiencyModel,
        skills: Sequence[str],
        rng: np.random.Generator,
    ) -> np.ndarray:
        """The scores :meth:`choose` ranks by, for batch assignment of many tasks at once.

        A posterior draw per candidate for ``thompson``, the posterior mean otherwise; the base
        scores unchanged outside ``adaptive`` mode. No uniform exploration and no propensity:
        use :meth:`choose` where decisions are logged for replay.
        """
        base = _check_candidates(candidate_agents, base_scores)
        if not self.explores:
            return base
        skills = check_skills(skills)
        if self.strategy == "thompson":
            a, b = model.posteriors(candidate_agents, skills)
            theta = rng.beta(a, b)
        else:
            theta = model.means(candidate_agents, skills)
        out: np.ndarray = (1.0 - self.success_weight) * base + self.success_weight * theta
        return out

    # ---------------------------------------------------------------- persistence

    def to_dict(self) -> dict[str, Any]:
        """Return the settings and the decision counter as a JSON-able dict."""
        return {
            "kind": "ExplorationPolicy",
            "version": _VERSION,
            "config": {
                "strategy": self.strategy,
                "mode": self.mode,
                "exploration_rate": self.exploration_rate,
                "min_exploration": self.min_exploration,
                "decay_constant": self.decay_constant,
                "success_weight": self.success_weight,
                "propensity_samples": self.propensity_samples,
            },
            "t": self.t,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ExplorationPolicy:
        """Rebuild a policy from :meth:`to_dict` output.

        Raises:
            ConfigurationError: the dict is not a valid policy state.
        """
        d = check_state("ExplorationPolicy", d, _VERSION)
        try:
            config = dict(d["config"])
            policy = cls(config.pop("strategy"), **config)
            policy.t = check_int("t", d["t"], 0)
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ConfigurationError):
                raise
            raise bad_state("ExplorationPolicy", exc) from exc
        return policy


def _check_posteriors(
    alpha: npt.ArrayLike, beta: npt.ArrayLike, k: int
) -> tuple[np.ndarray, np.ndarray]:
    a = np.asarray(alpha, dtype=float).reshape(-1)
    b = np.asarray(beta, dtype=float).reshape(-1)
    if (
        a.size != k
        or b.size != k
        or not (np.isfinite(a).all() and np.isfinite(b).all() and (a > 0).all() and (b > 0).all())
    ):
        raise ConfigurationError(
            f"alpha={alpha!r}, beta={beta!r} must hold {k} finite positive Beta parameters each. "
            "Fix: pass ProficiencyModel.posteriors(candidates, skills).",
            field="alpha",
            value=alpha,
        )
    return a, b


def _check_candidates(
    candidate_agents: Sequence[str] | range, base_scores: npt.ArrayLike
) -> np.ndarray:
    try:
        base = np.asarray(base_scores, dtype=float).reshape(-1)
    except (TypeError, ValueError):
        base = np.array([math.nan])
    k = len(candidate_agents)
    if k == 0 or base.size != k or not np.isfinite(base).all():
        raise ConfigurationError(
            f"base_scores={base_scores!r} must hold one finite score per candidate "
            f"(got {k} candidates). Fix: pass only feasible candidates with their scores.",
            field="base_scores",
            value=base_scores,
        )
    return base
