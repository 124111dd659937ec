"""Learning from outcomes: success posteriors, exploration, replay evaluation of weightings.

The optimizer's pure core (no LangGraph). Outcomes of finished tasks update per-agent and
per-(agent, skill) success posteriors (:class:`ProficiencyModel`); in ``adaptive`` mode the
allocator's choice among feasible candidates blends its deterministic score with those posteriors
and explores (:class:`ExplorationPolicy`, Thompson sampling by default); each decision is logged
with its propensity in a bounded :class:`ReplayBuffer`; candidate score weightings are judged
offline by replay (:func:`evaluate_weights`) and switched only on a gain of at least
``adaptation_threshold``, with rollback (:class:`StrategyManager`). :class:`Learner` bundles the
four, built from the orchestra's config, with every part JSON-able (``to_dict``/``from_dict``)
and bounded so it can live in the LangGraph Store. Not thread-safe: one optimizer owns it.

How the config maps (:meth:`Learner.from_config`); measured by ``tools/bench_learning.py``:

* ``learning_parameters.learning_decay_factor`` (0.95): the weight an outcome keeps after
  ``DEFAULT_DECAY_PERIOD`` (50) newer outcomes of the *same* agent (and skill), i.e. a discount
  ``0.95 ** (1/50) = 0.99897`` per update of that posterior, an effective memory of ~975 outcomes.
  Read literally (0.95 at every update, a memory of 20 outcomes) it forgets far too fast: the
  stationary bench loses 4.6% of tasks (median of 30 runs) instead of 1.2%.
* ``optimization.learning_rate`` (0.01): scales the evidence of each outcome,
  ``evidence_weight = learning_rate / 0.01`` pseudo-observations, so the default counts each
  outcome once and 0.02 counts it twice. Read literally (each outcome worth 0.01 of an
  observation) the posteriors barely narrow and the bench loses 11.7% of tasks.
* ``learning_parameters.exploration_rate`` (0.1): the ceiling of the uniform-exploration
  probability, decaying as ``5 K / t`` to a floor of ``exploration_rate / 10`` kept for replay
  logging (for ``thompson``; see :class:`ExplorationPolicy` for the other strategies). A
  constant 10% exploration loses 3.1-3.4% of tasks on the bench; the floor costs ~0.25%.
* ``learning_parameters.experience_replay_buffer_size``: the buffer capacity; entries fade by
  ``learning_decay_factor ** (20 * age / capacity)``, so a full buffer's oldest entry keeps ~36%.
* ``optimization.adaptation_threshold`` (0.1): the minimum *absolute* gain in replayed success
  rate for a weighting switch (which must also be significant and well supported; see
  :class:`StrategyManager`).
* ``orchestration_mode``: ``static`` and ``dynamic`` never learn or explore.
"""

from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from stellar_graph._learning_checks import (
    MODES,
    STRATEGIES,
    bad_state,
    check_agent_id,
    check_skills,
    check_state,
    check_unit,
)
from stellar_graph._learning_model import DEFAULT_DECAY_PERIOD, ProficiencyModel
from stellar_graph._learning_policy import ExplorationPolicy
from stellar_graph._learning_replay import ReplayBuffer, ReplayEstimate, evaluate_weights
from stellar_graph._learning_strategy import StrategyManager, neighbour_weightings
from stellar_graph.config import OrchestraConfig
from stellar_graph.errors import InvalidInputError
from stellar_graph.models import FACTORS

if TYPE_CHECKING:
    from stellar_graph.prediction import CompletionPredictor

__all__ = [
    "DEFAULT_DECAY_PERIOD",
    "MODES",
    "REFERENCE_LEARNING_RATE",
    "REPLAY_DECAY_SPAN",
    "STRATEGIES",
    "Decision",
    "ExplorationPolicy",
    "Learner",
    "Outcome",
    "ProficiencyModel",
    "ReplayBuffer",
    "ReplayEstimate",
    "StrategyManager",
    "evaluate_weights",
    "LearningScore",
    "neighbour_weightings",
]

logger = logging.getLogger(__name__)

REFERENCE_LEARNING_RATE = 0.01
"""The ``learning_rate`` at which one outcome counts as one observation (the seed's default)."""
REPLAY_DECAY_SPAN = 20
"""A full buffer's oldest entry weighs ``learning_decay_factor ** REPLAY_DECAY_SPAN``."""

_VERSION = 1


@dataclass(frozen=True)
class Decision:
    """One logged choice among feasible candidates (what replay needs to re-judge it).

    Attributes:
        index: position of the chosen candidate.
        propensity: probability the policy had of choosing it, in (0, 1].
        candidates: the candidates' agent ids.
        factors: each candidate's factor vector (``FACTORS`` order), or ``None`` if not logged.
        estimates: each candidate's learned success estimate at decision time, or ``None``.
    """

    index: int
    propensity: float
    candidates: tuple[str, ...]
    factors: tuple[tuple[float, ...], ...] | None = None
    estimates: tuple[float, ...] | None = None

    @property
    def agent_id(self) -> str:
        """The chosen agent."""
        return self.candidates[self.index]

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a JSON-able dict."""
        d = asdict(self)
        d["candidates"] = list(self.candidates)
        d["factors"] = None if self.factors is None else [list(r) for r in self.factors]
        d["estimates"] = None if self.estimates is None else list(self.estimates)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Decision:
        """Rebuild a decision from :meth:`to_dict` output."""
        factors, est = d.get("factors"), d.get("estimates")
        return cls(
            index=int(d["index"]),
            propensity=float(d["propensity"]),
            candidates=tuple(str(c) for c in d["candidates"]),
            factors=None if factors is None else tuple(tuple(float(x) for x in r) for r in factors),
            estimates=None if est is None else tuple(float(x) for x in est),
        )


@dataclass(frozen=True)
class Outcome:
    """What happened when an agent did a task: the optimizer's unit of evidence.

    Attributes:
        agent_id: the agent that did the task.
        success: whether it succeeded.
        skills: the task's required skills.
        quality: optional quality in [0, 1] of a success (the reward is ``quality`` for a success
            when given, 1 otherwise, and 0 for a failure).
        estimated_minutes: the task's estimate, if known.
        actual_minutes: how long it took, if known.
        tokens: tokens used, if known.
        decision: the allocation decision (candidates, factors, propensity), if it was logged.
        timestamp: when it finished (ISO 8601), informational.
        task_id: the task, informational.
    """

    agent_id: str
    success: bool
    skills: tuple[str, ...] = ()
    quality: float | None = None
    estimated_minutes: float | None = None
    actual_minutes: float | None = None
    tokens: int | None = None
    decision: Decision | None = None
    timestamp: str | None = None
    task_id: str | None = None

    def __post_init__(self) -> None:
        check_agent_id(self.agent_id)
        object.__setattr__(self, "skills", check_skills(self.skills))
        if not isinstance(self.success, (bool, np.bool_)):
            raise _outcome_error("success", self.success, "True or False")
        if self.quality is not None:
            check_unit("quality", self.quality)
        for name in ("estimated_minutes", "actual_minutes", "tokens"):
            value = getattr(self, name)
            if value is not None and not _nonneg_number(value):
                raise _outcome_error(name, value, "a finite number >= 0, or None")
        if self.decision is not None and not isinstance(self.decision, Decision):
            raise _outcome_error("decision", self.decision, "a Decision or None")

    @property
    def reward(self) -> float:
        """0 for a failure; ``quality`` (default 1) for a success."""
        if not self.success:
            return 0.0
        return 1.0 if self.quality is None else float(self.quality)

    @property
    def factors(self) -> tuple[float, ...] | None:
        """The chosen agent's factor vector at decision time, if logged."""
        d = self.decision
        return None if d is None or d.factors is None else d.factors[d.index]

    @property
    def propensity(self) -> float | None:
        """The probability the decision had of choosing this agent, if logged."""
        return None if self.decision is None else self.decision.propensity

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a JSON-able dict."""
        d = asdict(self)
        d["skills"] = list(self.skills)
        d["decision"] = None if self.decision is None else self.decision.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Outcome:
        """Build an outcome from :meth:`to_dict` output (or a dict with the same keys).

        Raises:
            InvalidInputError: a missing or bad field.
        """
        try:
            fields = dict(d)
            decision = fields.pop("decision", None)
            fields["skills"] = tuple(fields.get("skills") or ())
            return cls(
                **fields, decision=None if decision is None else Decision.from_dict(decision)
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, InvalidInputError):
                raise
            raise _outcome_error("outcome", d, f"a dict of Outcome fields ({exc!s})") from exc


class LearningScore:
    """``adaptation.learning_score``: how much better the learner's picks did than chance.

    Over the logged decisions ``i`` (newest weighs 1, each older one ``decay`` times less), with
    reward ``r_i``, propensity ``p_i`` and ``K_i`` candidates, and ``u_i = 1 / (K_i p_i)``:

    * ``V_live = sum(w_i r_i) / sum(w_i)``: the success rate the live policy obtained;
    * ``V_uniform = sum(w_i u_i r_i) / sum(w_i u_i)``: the self-normalised inverse-propensity
      estimate of choosing uniformly among the same candidates;
    * ``learning_score = V_live - V_uniform``, in [-1, 1]: positive when learning picks better
      agents than chance, about 0 while it has nothing to go on; ``None`` before
      ``min_entries`` decisions were logged.

    Kept as four discounted running sums, so reading it never scans the replay buffer.

    Example:
        >>> score = LearningScore(decay=1.0, min_entries=1)
        >>> for reward, propensity in [(1.0, 0.9), (1.0, 0.9), (0.0, 0.1)]:
        ...     score.add(reward, propensity, 2)
        >>> round(score.value(), 4)  # V_live 2/3; V_uniform (2*1/1.8) / (2/1.8 + 1/0.2)
        0.4848
    """

    def __init__(self, *, decay: float = 1.0, min_entries: int = 30) -> None:
        self.decay, self.min_entries = decay, min_entries
        self.sums = [0.0, 0.0, 0.0, 0.0]  # sum w, sum w r, sum w u, sum w u r
        self.count = 0

    def add(self, reward: float, propensity: float, n_candidates: int) -> None:
        """Count one logged decision."""
        u = 1.0 / (n_candidates * propensity)
        self.sums = [x * self.decay for x in self.sums]
        for i, x in enumerate((1.0, reward, u, u * reward)):
            self.sums[i] += x
        self.count += 1

    def value(self) -> float | None:
        """The score (see the class docstring), or ``None`` with too few decisions."""
        w, wr, wu, wur = self.sums
        if self.count < max(1, self.min_entries) or w <= 0 or wu <= 0:
            return None
        return round(wr / w - wur / wu, 6)

    def to_list(self) -> list[float]:
        return [*self.sums, float(self.count)]

    def load(self, row: Sequence[float]) -> None:
        *sums, count = (float(x) for x in row)
        self.sums, self.count = list(sums), int(count)


class Learner:
    """The optimizer's learning state: proficiency model, exploration, replay and weightings.

    Example:
        >>> learner = Learner.from_config({"orchestration_mode": "adaptive"})
        >>> d = learner.decide(["a", "b"], [0.5, 0.5], ["x"], np.random.default_rng(0))
        >>> learner.learn([Outcome(d.agent_id, True, ("x",), decision=d)])["learned"]
        1
    """

    def __init__(
        self,
        *,
        model: ProficiencyModel | None = None,
        policy: ExplorationPolicy | None = None,
        buffer: ReplayBuffer | None = None,
        strategies: StrategyManager | None = None,
    ) -> None:
        """Bundle the parts (defaults for any not given; prefer :meth:`from_config`).

        Args:
            model: success posteriors. policy: how candidates are chosen; its ``mode`` is the
                learner's. buffer: logged decisions. strategies: the live weighting.
        """
        # `is None`, not `or`: an empty ReplayBuffer is falsy.
        self.model = ProficiencyModel() if model is None else model
        self.policy = ExplorationPolicy() if policy is None else policy
        self.buffer = ReplayBuffer() if buffer is None else buffer
        if strategies is None:
            strategies = StrategyManager(success_weight=self.policy.success_weight)
        self.strategies = strategies
        self.score = LearningScore(decay=self.buffer.decay)

    @classmethod
    def from_config(
        cls,
        config: OrchestraConfig | Mapping[str, Any] | None = None,
        *,
        strategy: str | None = None,
    ) -> Learner:
        """Build a learner from the orchestra config (the mapping is in the module docstring).

        Args:
            config: an ``OrchestraConfig``, a dict or ``None`` (defaults).
            strategy: exploration strategy (one of ``STRATEGIES``); default
                ``learning_parameters.exploration_strategy``.

        Raises:
            ConfigurationError: a bad config or strategy.
        """
        cfg = OrchestraConfig.load(config)
        lp, opt = cfg.learning_parameters, cfg.optimization
        capacity = lp.experience_replay_buffer_size
        policy = ExplorationPolicy(
            strategy or lp.exploration_strategy,
            mode=cfg.orchestration_mode,
            exploration_rate=lp.exploration_rate,
        )
        return cls(
            model=ProficiencyModel(
                decay=lp.learning_decay_factor,
                decay_period=DEFAULT_DECAY_PERIOD,
                evidence_weight=opt.learning_rate / REFERENCE_LEARNING_RATE,
            ),
            policy=policy,
            buffer=ReplayBuffer(
                capacity, decay=lp.learning_decay_factor ** (REPLAY_DECAY_SPAN / capacity)
            ),
            strategies=StrategyManager(
                cfg.task_allocation.weights,
                adaptation_threshold=opt.adaptation_threshold,
                success_weight=policy.success_weight,
            ),
        )

    @property
    def mode(self) -> str:
        """``static``, ``dynamic`` or ``adaptive`` (the policy's)."""
        return self.policy.mode

    @property
    def weights(self) -> dict[str, float]:
        """The live score weighting."""
        return self.strategies.current

    def decide(
        self,
        candidate_agents: Sequence[str],
        base_scores: npt.ArrayLike,
        skills: Sequence[str],
        rng: np.random.Generator,
        *,
        factors: npt.ArrayLike | None = None,
    ) -> Decision:
        """Choose among feasible candidates and return the loggable decision.

        Args:
            candidate_agents: feasible candidates' ids. base_scores: their deterministic scores.
            skills: the task's required skills. rng: the random source.
            factors: (K, 5) factor vectors of the candidates, needed to replay the decision.

        Returns:
            The decision; pass it back in :class:`Outcome` ``decision`` when the task finishes.

        Raises:
            ConfigurationError: no candidates or mismatched scores. InvalidInputError: bad factors.
        """
        ids = tuple(candidate_agents)
        rows = None
        if factors is not None:
            m = np.asarray(factors, dtype=float)
            if m.shape != (len(ids), len(FACTORS)) or not np.isfinite(m).all():
                raise _outcome_error(
                    "factors",
                    factors,
                    f"a ({len(ids)}, {len(FACTORS)}) finite array, one row per candidate",
                )
            rows = tuple(tuple(float(x) for x in r) for r in m.tolist())
        skills = check_skills(skills)
        alpha, beta = self.model.posteriors(ids, skills)
        index, propensity = self.policy.choose_from_posteriors(base_scores, alpha, beta, rng)
        estimates = tuple((alpha / (alpha + beta)).tolist()) if self.policy.explores else None
        logger.debug("decision: %r among %d (propensity %.4f)", ids[index], len(ids), propensity)
        return Decision(index, propensity, ids, rows, estimates)

    def learn(
        self, outcomes: Iterable[Outcome], *, predictor: CompletionPredictor | None = None
    ) -> dict[str, int]:
        """Learn from finished tasks (the seed's ``learn_from_system_behavior``).

        In ``adaptive`` mode each outcome updates the proficiency model and, when its decision
        was logged with factors and chose the agent that did the task, the replay buffer. In
        every mode, outcomes with both durations feed ``predictor`` (duration calibration).

        Returns:
            Counts: ``outcomes``, ``learned`` (model updates), ``logged`` (replay entries),
            ``calibrated`` (predictor observations).
        """
        counts = {"outcomes": 0, "learned": 0, "logged": 0, "calibrated": 0}
        for o in outcomes:
            if not isinstance(o, Outcome):
                raise _outcome_error("outcome", o, "an Outcome (build one with Outcome.from_dict)")
            counts["outcomes"] += 1
            if predictor is not None and o.estimated_minutes and o.actual_minutes:
                predictor.observe(o.agent_id, o.estimated_minutes, o.actual_minutes)
                counts["calibrated"] += 1
            if not self.policy.explores:
                continue
            self.model.update(
                o.agent_id,
                o.skills,
                o.reward,
                tokens=o.tokens,
                estimated_minutes=o.estimated_minutes,
                actual_minutes=o.actual_minutes,
            )
            counts["learned"] += 1
            d = o.decision
            if d is not None and d.factors is not None and d.agent_id == o.agent_id:
                self.buffer.add(
                    d.factors,
                    d.index,
                    d.propensity,
                    o.reward,
                    candidates=d.candidates,
                    estimates=d.estimates,
                )
                self.score.add(o.reward, d.propensity, len(d.candidates))
                counts["logged"] += 1
        return counts

    def improve(
        self, candidates: Sequence[Mapping[str, float]] | None = None, *, step: float = 0.1
    ) -> list[dict[str, Any]]:
        """Replay candidate weightings; switch to the best if it gains enough.

        The seed's ``improve_orchestration_strategies``. Outside ``adaptive`` mode the candidates
        are evaluated and judged but never applied.

        Args:
            candidates: weightings to try; default :func:`neighbour_weightings` of the current
                one with ``step``.
            step: see :func:`neighbour_weightings`.

        Returns:
            One result per candidate (see :meth:`StrategyManager.propose`).
        """
        if candidates is None:
            candidates = neighbour_weightings(self.weights, step)
        results = self.strategies.propose(candidates, self.buffer, apply=self.policy.explores)
        if not self.policy.explores:
            for r in results:
                r["reason"] = f"mode {self.mode!r} does not adapt ({r['reason']})"
        return results

    def rollback(self) -> dict[str, float]:
        """Restore the weighting before the last applied switch (see :meth:`StrategyManager.rollback`)."""
        return self.strategies.rollback()

    def core_dict(self) -> dict[str, Any]:
        """What was learned, without the replay entries: the part every allocation reads.

        :meth:`restore` puts it back under a (possibly changed) config. The orchestra keeps it
        in one Store item and the replay entries in items of their own (``stellar_graph.memory``).
        """
        return {
            "kind": "LearnerCore",
            "version": _VERSION,
            "model": self.model.to_dict(),
            "decisions": self.policy.t,
            "strategies": self.strategies.to_dict(),
            "score": self.score.to_list(),
        }

    @classmethod
    def restore(
        cls, config: OrchestraConfig | Mapping[str, Any] | None, core: Mapping[str, Any] | None
    ) -> Learner:
        """A learner configured by ``config`` that resumes the evidence of a :meth:`core_dict`.

        The config decides how to learn from now on (mode, rates, threshold, buffer size); the
        core brings what was learned (posteriors, decision count, live weighting, rollback
        stack). ``core=None`` starts fresh.

        Raises:
            ConfigurationError: a bad config, or a core that is not a learner's.
        """
        learner = cls.from_config(config)
        if core is None:
            return learner
        d = check_state("LearnerCore", core, _VERSION)
        try:
            stored_model = ProficiencyModel.from_dict(d["model"])
            stored_strategies = StrategyManager.from_dict(d["strategies"])
            learner.policy.t = int(d["decisions"])
            learner.score.load(d["score"])
        except (KeyError, TypeError, ValueError) as exc:
            raise bad_state("LearnerCore", exc) from exc
        learner.model.adopt_evidence(stored_model)
        learner.strategies.adopt_weightings(stored_strategies)
        return learner

    def to_dict(self) -> dict[str, Any]:
        """Return the whole learning state as a bounded, JSON-able dict."""
        return {
            "kind": "Learner",
            "version": _VERSION,
            "model": self.model.to_dict(),
            "policy": self.policy.to_dict(),
            "buffer": self.buffer.to_dict(),
            "strategies": self.strategies.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Learner:
        """Rebuild a learner from :meth:`to_dict` output.

        Raises:
            ConfigurationError: the dict is not a valid learner state.
        """
        d = check_state("Learner", d, _VERSION)
        try:
            return cls(
                model=ProficiencyModel.from_dict(d["model"]),
                policy=ExplorationPolicy.from_dict(d["policy"]),
                buffer=ReplayBuffer.from_dict(d["buffer"]),
                strategies=StrategyManager.from_dict(d["strategies"]),
            )
        except KeyError as exc:
            raise bad_state("Learner", exc) from exc


def _nonneg_number(value: object) -> bool:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    return math.isfinite(float(value)) and float(value) >= 0.0


def _outcome_error(field: str, value: object, need: str) -> InvalidInputError:
    return InvalidInputError(
        f"{field}={value!r} is invalid. Fix: pass {need}.",
        errors=[{"field": field, "value": value, "message": f"must be {need}"}],
    )
