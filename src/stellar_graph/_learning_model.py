"""`ProficiencyModel`: discounted Beta posteriors of success per agent and per (agent, skill)."""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from stellar_graph._learning_checks import (
    bad_state,
    check_agent_id,
    check_int,
    check_number,
    check_skills,
    check_state,
    check_unit,
)
from stellar_graph.errors import ConfigurationError

__all__ = ["DEFAULT_DECAY_PERIOD", "ProficiencyModel"]

logger = logging.getLogger(__name__)

DEFAULT_DECAY_PERIOD = 50
"""Newer outcomes of the same agent after which an outcome's weight is multiplied by ``decay``."""

_VERSION = 1


class _Agent:
    """Evidence of one agent: success counts, per-skill counts and discounted side statistics."""

    __slots__ = (
        "a",
        "b",
        "last",
        "log_overrun",
        "ratio_weight",
        "skills",
        "token_weight",
        "tokens",
        "updates",
    )

    def __init__(self) -> None:
        self.a = 0.0  # discounted successes (evidence only; the prior is added at query time)
        self.b = 0.0  # discounted failures
        self.updates = 0
        self.last = 0  # model step of the latest update, for least-recently-updated eviction
        self.skills: dict[str, list[float]] = {}  # skill -> [a, b, last]
        self.tokens = 0.0  # discounted sum of tokens ...
        self.token_weight = 0.0  # ... and of the weights of the outcomes that reported tokens
        self.log_overrun = 0.0  # discounted sum of log(actual / estimated) ...
        self.ratio_weight = 0.0  # ... and of the weights of the outcomes that reported both

    def to_list(self) -> list[Any]:
        skills = {s: list(v) for s, v in self.skills.items()}
        return [
            self.a,
            self.b,
            self.updates,
            self.last,
            skills,
            self.tokens,
            self.token_weight,
            self.log_overrun,
            self.ratio_weight,
        ]

    @classmethod
    def from_list(cls, row: Sequence[Any]) -> _Agent:
        agent = cls()
        a, b, updates, last, skills, tokens, token_weight, log_overrun, ratio_weight = row
        agent.a, agent.b = _nonneg("a", a), _nonneg("b", b)
        agent.updates, agent.last = int(updates), int(last)
        agent.skills = {
            str(s): [_nonneg("skill a", v[0]), _nonneg("skill b", v[1]), int(v[2])]
            for s, v in skills.items()
        }
        agent.tokens, agent.token_weight = float(tokens), _nonneg("token_weight", token_weight)
        agent.log_overrun, agent.ratio_weight = (
            float(log_overrun),
            _nonneg("ratio_weight", ratio_weight),
        )
        return agent


class ProficiencyModel:
    """Discounted Beta-Bernoulli posteriors of task success, per agent and per (agent, skill).

    * **Update.** An outcome with reward ``r`` in [0, 1] (1 = success at full quality) adds
      ``w * r`` to the successes and ``w * (1 - r)`` to the failures of the agent and of each of
      the task's skills for that agent, where ``w = evidence_weight``. Before adding, the old
      evidence of exactly those posteriors is multiplied by ``gamma = decay ** (1/decay_period)``.
    * **Why per update of that agent, not per global step.** Global discounting also shrinks the
      evidence of agents that were not chosen, so their posteriors widen and must be re-explored
      although nothing about them changed; the B7 bench measured this at 3.8% of rounds lost
      (gamma = 0.999 globally) against ~1% without forgetting. Per-update discounting forgets only
      as newer evidence replaces older, so a degrading agent is noticed as fast as with global
      discounting while rarely chosen agents keep what is known about them.
    * **Memory.** Effective memory ``1 / (1 - gamma)`` updates of the same agent; the default
      ``decay=0.95, decay_period=50`` gives gamma = 0.99897 and ~975 outcomes, the note's
      "about 100x the number of agents" for a team of ten.
    * **Query.** Without skills, ``Beta(prior_a + a, prior_b + b)``. With skills ``S``, the skill
      counts averaged over ``S`` (a skill without history counts zero) on top of a prior centred on
      the agent's posterior mean ``m`` with strength ``k = min(skill_prior_strength, agent's
      prior + evidence)``: ``Beta(k m + mean_s a_s, k (1 - m) + mean_s b_s)``. A new skill of a
      known agent thus starts near the agent's overall record but stays wide.
    * **Bounded.** At most ``max_agents`` agents and ``max_skills_per_agent`` skills per agent;
      the least recently updated is dropped beyond that.

    Example:
        >>> m = ProficiencyModel(decay=1.0)
        >>> m.update("ada", ["math"], 1.0)
        >>> m.posterior("ada")
        (2.0, 1.0)
    """

    def __init__(
        self,
        *,
        decay: float = 0.95,
        decay_period: int = DEFAULT_DECAY_PERIOD,
        evidence_weight: float = 1.0,
        prior: tuple[float, float] = (1.0, 1.0),
        skill_prior_strength: float = 4.0,
        max_agents: int = 10_000,
        max_skills_per_agent: int = 64,
    ) -> None:
        """Create an empty model.

        Args:
            decay: weight an outcome keeps after ``decay_period`` newer outcomes of the same
                posterior, in (0, 1]; 1 never forgets (``learning_decay_factor``).
            decay_period: see ``decay``; 1 applies ``decay`` at every update.
            evidence_weight: pseudo-observations one outcome adds, in (0, 100]
                (``learning_rate / 0.01`` under the config mapping).
            prior: Beta prior ``(a, b)`` of an agent, both > 0.
            skill_prior_strength: pseudo-observations of the agent-level prior of a skill, > 0.
            max_agents: agents kept (least recently updated dropped first).
            max_skills_per_agent: skills kept per agent (least recently updated dropped first).

        Raises:
            ConfigurationError: an argument is out of range.
        """
        self.decay = check_number("learning_decay_factor", decay, 0.0, 1.0, open_low=True)
        self.decay_period = check_int("decay_period", decay_period, 1)
        self.evidence_weight = check_number(
            "evidence_weight", evidence_weight, 0.0, 100.0, open_low=True
        )
        if not isinstance(prior, (tuple, list)) or len(prior) != 2:
            raise _pair_error("prior", prior)
        self.prior = (
            check_number("prior[0]", prior[0], 0.0, 1e6, open_low=True),
            check_number("prior[1]", prior[1], 0.0, 1e6, open_low=True),
        )
        self.skill_prior_strength = check_number(
            "skill_prior_strength", skill_prior_strength, 0.0, 1e6, open_low=True
        )
        self.max_agents = check_int("max_agents", max_agents, 1)
        self.max_skills_per_agent = check_int("max_skills_per_agent", max_skills_per_agent, 1)
        self.gamma = self.decay ** (1.0 / self.decay_period)
        self._agents: dict[str, _Agent] = {}
        self._step = 0

    @property
    def memory(self) -> float:
        """Effective memory in updates of one posterior, ``1 / (1 - gamma)`` (inf without decay)."""
        return math.inf if self.gamma >= 1.0 else 1.0 / (1.0 - self.gamma)

    @property
    def agents(self) -> tuple[str, ...]:
        """Ids of the agents with evidence, in insertion order."""
        return tuple(self._agents)

    # ------------------------------------------------------------------ learning

    def update(
        self,
        agent_id: str,
        skills: Sequence[str],
        reward: float,
        *,
        tokens: float | None = None,
        estimated_minutes: float | None = None,
        actual_minutes: float | None = None,
    ) -> None:
        """Record one outcome of ``agent_id`` on a task needing ``skills``.

        Args:
            agent_id: the agent that did the task.
            skills: the task's required skills (may be empty).
            reward: 1 for a success at full quality, 0 for a failure, or a quality in between.
            tokens: tokens the task used, if known (kept as a discounted mean).
            estimated_minutes: the task's estimate; with ``actual_minutes`` kept as a discounted
                mean overrun (the conformal intervals themselves live in ``prediction``).
            actual_minutes: how long it took.

        Raises:
            InvalidInputError: a bad agent id, skill list, reward or duration.
        """
        check_agent_id(agent_id)
        skills = check_skills(skills)
        r = check_unit("reward", reward)
        agent = self._agents.get(agent_id)
        if agent is None:
            agent = self._agents[agent_id] = _Agent()
        self._step += 1
        g, w = self.gamma, self.evidence_weight
        agent.a, agent.b = g * agent.a + w * r, g * agent.b + w * (1.0 - r)
        agent.updates += 1
        agent.last = self._step
        for skill in skills:
            ab = agent.skills.get(skill)
            if ab is None:
                ab = agent.skills[skill] = [0.0, 0.0, 0]
            ab[0], ab[1], ab[2] = g * ab[0] + w * r, g * ab[1] + w * (1.0 - r), self._step
        if tokens is not None:
            agent.tokens = g * agent.tokens + w * max(0.0, float(tokens))
            agent.token_weight = g * agent.token_weight + w
        if estimated_minutes and actual_minutes and estimated_minutes > 0 and actual_minutes > 0:
            agent.log_overrun = g * agent.log_overrun + w * math.log(
                actual_minutes / estimated_minutes
            )
            agent.ratio_weight = g * agent.ratio_weight + w
        self._evict(agent)

    def forget_agent(self, agent_id: str) -> bool:
        """Drop everything known about ``agent_id``; return whether it was known."""
        return self._agents.pop(agent_id, None) is not None

    # ------------------------------------------------------------------ queries

    def posterior(self, agent_id: str, skills: Sequence[str] = ()) -> tuple[float, float]:
        """Beta parameters ``(a, b)`` of the success probability of ``agent_id`` on ``skills``.

        An unknown agent gets the prior.
        """
        pa, pb = self.prior
        agent = self._agents.get(agent_id)
        if agent is None:
            return pa, pb
        a, b = pa + agent.a, pb + agent.b
        if not skills:
            return a, b
        strength = min(self.skill_prior_strength, a + b)
        mean = a / (a + b)
        sa = sb = 0.0
        for skill in skills:
            ab = agent.skills.get(skill)
            if ab is not None:
                sa += ab[0]
                sb += ab[1]
        n = len(skills)
        return strength * mean + sa / n, strength * (1.0 - mean) + sb / n

    def posteriors(
        self, agent_ids: Sequence[str], skills: Sequence[str] = ()
    ) -> tuple[np.ndarray, np.ndarray]:
        """Beta parameters of several agents on the same skills, as two float arrays."""
        ab = [self.posterior(a, skills) for a in agent_ids]
        arr = np.array(ab, dtype=float).reshape(len(ab), 2)
        return arr[:, 0], arr[:, 1]

    def mean(self, agent_id: str, skills: Sequence[str] = ()) -> float:
        """Posterior mean success probability of ``agent_id`` on ``skills``."""
        a, b = self.posterior(agent_id, skills)
        return a / (a + b)

    def means(self, agent_ids: Sequence[str], skills: Sequence[str] = ()) -> np.ndarray:
        """Posterior means of several agents on the same skills."""
        a, b = self.posteriors(agent_ids, skills)
        out: np.ndarray = a / (a + b)
        return out

    def sample(self, agent_id: str, skills: Sequence[str], rng: np.random.Generator) -> float:
        """One Thompson draw of the success probability of ``agent_id`` on ``skills``."""
        a, b = self.posterior(agent_id, skills)
        return float(rng.beta(a, b))

    def summary(self, agent_id: str) -> dict[str, Any]:
        """What the model knows about one agent, as a JSON-able dict.

        Returns:
            ``success_mean``, ``evidence`` (discounted outcomes), ``updates``, ``mean_tokens``
            and ``duration_ratio`` (discounted geometric mean of actual / estimated; ``None``
            when never reported), and ``skills``: skill -> ``{"success_mean", "evidence"}``.
        """
        agent = self._agents.get(agent_id) or _Agent()
        skills = {
            s: {"success_mean": self.mean(agent_id, [s]), "evidence": ab[0] + ab[1]}
            for s, ab in agent.skills.items()
        }
        return {
            "success_mean": self.mean(agent_id),
            "evidence": agent.a + agent.b,
            "updates": agent.updates,
            "mean_tokens": agent.tokens / agent.token_weight if agent.token_weight > 0 else None,
            "duration_ratio": math.exp(agent.log_overrun / agent.ratio_weight)
            if agent.ratio_weight > 0
            else None,
            "skills": skills,
        }

    def adopt_evidence(self, other: ProficiencyModel) -> None:
        """Take over ``other``'s evidence (counts and step), keeping this model's settings."""
        self._agents = {a: _Agent.from_list(agent.to_list()) for a, agent in other._agents.items()}
        self._step = other._step

    # ---------------------------------------------------------------- persistence

    def to_dict(self) -> dict[str, Any]:
        """Return the whole state as a bounded, JSON-able dict (see :meth:`from_dict`)."""
        return {
            "kind": "ProficiencyModel",
            "version": _VERSION,
            "config": {
                "decay": self.decay,
                "decay_period": self.decay_period,
                "evidence_weight": self.evidence_weight,
                "prior": list(self.prior),
                "skill_prior_strength": self.skill_prior_strength,
                "max_agents": self.max_agents,
                "max_skills_per_agent": self.max_skills_per_agent,
            },
            "step": self._step,
            "agents": {a: agent.to_list() for a, agent in self._agents.items()},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ProficiencyModel:
        """Rebuild a model from :meth:`to_dict` output; every query answers identically.

        Raises:
            ConfigurationError: the dict is not a valid model state.
        """
        d = check_state("ProficiencyModel", d, _VERSION)
        try:
            config = dict(d["config"])
            config["prior"] = tuple(config["prior"])
            model = cls(**config)
            model._step = int(d["step"])
            model._agents = {str(a): _Agent.from_list(row) for a, row in d["agents"].items()}
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise bad_state("ProficiencyModel", exc) from exc
        return model

    # ---------------------------------------------------------------- internals

    def _evict(self, agent: _Agent) -> None:
        if len(agent.skills) > self.max_skills_per_agent:
            oldest = min(agent.skills, key=lambda s: agent.skills[s][2])
            del agent.skills[oldest]
        if len(self._agents) > self.max_agents:
            oldest = min(self._agents, key=lambda a: self._agents[a].last)
            del self._agents[oldest]
            logger.debug("proficiency model full: dropped least recently updated agent %r", oldest)


def _pair_error(field: str, value: object) -> ConfigurationError:
    return ConfigurationError(
        f"{field}={value!r} is invalid. Fix: pass a pair (a, b) of positive numbers, e.g. (1.0, 1.0).",
        field=field,
        value=value,
    )


def _nonneg(field: str, value: object) -> float:
    x = float(value)  # type: ignore[arg-type]
    if not (math.isfinite(x) and x >= 0.0):
        raise ValueError(f"{field}={value!r} must be a finite number >= 0")
    return x
