"""`CollaborationMixin`: the seed's collaboration API on the orchestra facade.

The mixin needs only these members of the class it is mixed into: ``submit_run(payload)``,
``state()``, ``registered_agents()``, ``config`` and ``now()``.

Example::

    async with StellarOrchestra() as orchestra:
        ...  # register atlas-001, edison-001, lilith-001
        record = await orchestra.orchestrate_collaboration(
            ["atlas-001", "edison-001", "lilith-001"],
            {"id": "ethics-innovation-synthesis",
             "description": "Synthesize ethical guidelines for AI innovation",
             "objective": "Create comprehensive ethical framework",
             "success_criteria": ["stakeholder_approval", "implementation_feasibility"],
             "priority": "critical"})
        print(record["status"], record["outcome"])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from stellar_graph.board import agent_loads
from stellar_graph.collaboration._records import collab_loads
from stellar_graph.collaboration.models import CollaborationGoal, parse_request
from stellar_graph.collaboration.team import Team, form_team
from stellar_graph.consensus import Proposal, Rule, Vote, vote
from stellar_graph.errors import InvalidInputError, OrchestrationError
from stellar_graph.simulation import skill_match

if TYPE_CHECKING:
    from stellar_graph.config import OrchestraConfig

__all__ = ["CollaborationEngine", "CollaborationMixin"]


class CollaborationMixin:
    """Collaborations, team formation and voting for the orchestra facade."""

    if TYPE_CHECKING:
        config: OrchestraConfig

        async def submit_run(self, payload: Mapping[str, Any]) -> None: ...

        def state(self) -> dict[str, Any]: ...

        def registered_agents(self) -> dict[str, dict[str, Any]]: ...

        def now(self) -> datetime: ...

    async def orchestrate_collaboration(
        self,
        agent_ids: Sequence[str],
        goal: CollaborationGoal | Mapping[str, Any],
        *,
        rule: Rule = "majority",
        quorum: float = 0.5,
        supermajority: float = 2 / 3,
        when_full: str | None = None,
        bid_notes: bool = False,
    ) -> dict[str, Any]:
        """Run a collaboration to its end: plan, negotiate, execute, vote, resolve conflicts.

        Args:
            agent_ids: the team (registered agent ids).
            goal: ``id``, ``description``, ``objective``, ``success_criteria``, ``priority``
                (optionally ``required_skills``, ``deadline``, ``shared_resources``, ``max_subtasks``).
            rule: ``majority``, ``supermajority``, ``unanimous`` or ``weighted`` (by competence).
            quorum: fraction of the team that must vote.
            supermajority: threshold of the ``supermajority`` rule.
            when_full: ``queue`` or ``reject`` at ``max_concurrent_collaborations`` (default:
                ``collaboration.overflow`` in the config, else ``queue``).
            bid_notes: with a model, each proposal carries an LLM-written note.

        Returns:
            The collaboration record: ``status`` (``succeeded``, ``failed``, ``no_decision`` or
            ``rejected``), ``plan``, ``rounds`` (bids and awards), ``subtasks``, ``synthesis``,
            ``votes``, ``conflicts`` (with resolutions), ``outcome``, ``fallbacks``, ``usage``.

        Raises:
            InvalidInputError: the goal or the options are invalid, a team member is not
                registered, or the goal id is already used (nothing is submitted).
        """
        raw = goal.model_dump(mode="json") if isinstance(goal, CollaborationGoal) else dict(goal)
        payload: dict[str, Any] = {
            "goal": raw,
            "agent_ids": list(agent_ids),
            "bid_notes": bid_notes,
            "consensus": {"rule": rule, "quorum": quorum, "supermajority": supermajority},
        }
        if when_full is not None:
            payload["when_full"] = when_full
        request = parse_request(payload, registry=self.registered_agents())
        cid = request.goal.id
        if cid in (self.state().get("collaborations") or {}):
            raise InvalidInputError(
                f"Collaboration id {cid!r} is already used. Fix: choose a new `goal.id`.",
                errors=[
                    {"field": "goal.id", "value": cid, "message": "duplicate collaboration id"}
                ],
            )
        await self.submit_run({"start_collaborations": [request.model_dump(mode="json")]})
        record = (self.state().get("collaborations") or {}).get(cid)
        if record is None:  # pragma: no cover - the graph always records a valid request
            raise OrchestrationError(f"Collaboration {cid!r} left no record; check the run's logs.")
        return dict(record)

    async def form_cross_functional_team(self, requirements: Mapping[str, Any]) -> dict[str, Any]:
        """Choose the fewest, best-scored available agents that cover every required skill.

        Args:
            requirements: ``required_skills`` (or ``skills``), optional ``candidates`` (agent
                ids), ``max_size`` and ``description``.

        Returns:
            ``agent_ids``, ``coverage`` (skill -> member), ``scores``, ``excluded`` (agent ->
            why), ``method`` and ``explanation``.

        Raises:
            InvalidInputError: bad requirements.
            TeamFormationError: a skill no available agent holds (named), or ``max_size`` too small.
        """
        team = self.team_for(requirements)
        return team.to_dict()

    def team_for(self, requirements: Mapping[str, Any]) -> Team:
        """:meth:`form_cross_functional_team` as a :class:`~.team.Team` (synchronous)."""
        state = self.state()
        loads = agent_loads(state.get("tasks") or {})
        for agent, n in collab_loads(state.get("collaborations") or {}).items():
            loads[agent] = loads.get(agent, 0) + n
        return form_team(
            requirements,
            self.registered_agents(),
            weights=self.config.task_allocation.weights,
            now=self.now(),
            loads=loads,
        )

    def vote(
        self,
        proposal: Proposal | Mapping[str, Any],
        voters: Sequence[str],
        rule: Rule = "majority",
        *,
        votes: Sequence[Vote | Mapping[str, Any]],
        quorum: float = 0.5,
        supermajority: float = 2 / 3,
        competence: Mapping[str, float] | None = None,
    ) -> dict[str, Any]:
        """Decide a proposal from the votes given (pure: no graph run, no LLM).

        Args:
            proposal: a :class:`~stellar_graph.consensus.Proposal` or ``{"proposal_id",
                "description", "options"?, "required_skills"?}``.
            voters: the agent ids allowed to vote.
            rule: ``majority``, ``supermajority``, ``unanimous`` or ``weighted``.
            votes: ``{"voter", "choice", "reason", "weight"?}`` each (``cast_at`` optional).
            quorum: fraction of ``voters`` that must vote.
            supermajority: threshold of the ``supermajority`` rule.
            competence: voter -> probability of judging right (``weighted``); by default from
                each registered voter's skill match to the proposal's ``required_skills``.

        Returns:
            ``Decision.to_dict()``: ``outcome`` (None for an explicit no-decision), ``status``,
            ``reason``, ``tally``, ``participation``, ``votes``, ``late_votes``...

        Raises:
            ConfigurationError: unknown rule, bad quorum, or an empty or repeated voter list.
            InvalidInputError: a malformed vote or proposal.
        """
        prop, skills = _proposal(proposal)
        ballots = [v if isinstance(v, Vote) else _vote(v, i) for i, v in enumerate(votes)]
        if competence is None and skills:
            agents = self.registered_agents()
            competence = {
                v: 0.5 + 0.45 * skill_match({"required_skills": skills}, agents[v])
                for v in voters
                if v in agents
            }
        return vote(
            prop,
            ballots,
            voters,
            rule=rule,
            quorum=quorum,
            supermajority=supermajority,
            competence=competence,
        ).to_dict()

    @property
    def collaboration_engine(self) -> CollaborationEngine:
        """The seed's ``CollaborationEngine`` view of this orchestra."""
        return CollaborationEngine(self)


class CollaborationEngine:
    """The seed's collaboration component: a thin view over the orchestra's collaboration API."""

    def __init__(self, orchestra: CollaborationMixin) -> None:
        self._orchestra = orchestra

    async def facilitate_collaboration(
        self, agent_ids: Sequence[str], goal: Mapping[str, Any], **options: Any
    ) -> dict[str, Any]:
        """Same as :meth:`CollaborationMixin.orchestrate_collaboration`."""
        return await self._orchestra.orchestrate_collaboration(agent_ids, goal, **options)

    async def form_cross_functional_team(self, requirements: Mapping[str, Any]) -> dict[str, Any]:
        """Same as :meth:`CollaborationMixin.form_cross_functional_team`."""
        return await self._orchestra.form_cross_functional_team(requirements)

    def vote(
        self,
        proposal: Proposal | Mapping[str, Any],
        voters: Sequence[str],
        rule: Rule = "majority",
        **options: Any,
    ) -> dict[str, Any]:
        """Same as :meth:`CollaborationMixin.vote`."""
        return self._orchestra.vote(proposal, voters, rule, **options)


def _proposal(data: Proposal | Mapping[str, Any]) -> tuple[Proposal, list[str]]:
    if isinstance(data, Proposal):
        return data, []
    try:
        prop = Proposal(
            str(data["proposal_id"]),
            str(data.get("description", "")),
            tuple(data.get("options", ("approve", "reject"))),
        )
    except KeyError:
        raise InvalidInputError(
            f"proposal {dict(data)!r} needs a `proposal_id`. Fix: pass {{'proposal_id': 'p1', 'description': ...}}.",
            errors=[{"field": "proposal_id", "value": None, "message": "missing"}],
        ) from None
    return prop, [str(s) for s in data.get("required_skills") or []]


def _vote(data: Mapping[str, Any], index: int) -> Vote:
    try:
        return Vote(
            str(data["voter"]),
            str(data["choice"]),
            str(data.get("reason", "")),
            float(data.get("weight", 1.0)),
            cast_at=float(data.get("cast_at", index)),
        )
    except KeyError as exc:
        raise InvalidInputError(
            f"votes[{index}] {dict(data)!r} needs `{exc.args[0]}`. Fix: pass {{'voter', 'choice', 'reason'}}.",
            errors=[
                {"field": f"votes[{index}].{exc.args[0]}", "value": None, "message": "missing"}
            ],
        ) from None
