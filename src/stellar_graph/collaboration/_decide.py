"""The deciding nodes: ``consensus`` (the team votes) and ``conflict_resolution`` (mediation)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from stellar_graph.collaboration._execution import synthesize
from stellar_graph.collaboration._records import ACTIVE, account, finish, team_records
from stellar_graph.collaboration._steps import StepsBase, merge_results
from stellar_graph.collaboration.mediation import resolve_conflict, split_vote_conflict
from stellar_graph.collaboration.voting import cast_votes, competence, synthesis_proposal, tally
from stellar_graph.state import OrchestraState

__all__ = ["DecideSteps"]


class DecideSteps(StepsBase):
    """The team votes on its synthesis; conflicts are mediated (LLM) or ruled (deterministic)."""

    async def consensus(self, state: OrchestraState) -> dict[str, Any]:
        """Every voting collaboration: synthesise, collect the ballots, tally under its rule."""
        now = self.clock()
        recs = [
            r for r in (state.get("collaborations") or {}).values() if r.get("status") == "voting"
        ]
        results = await asyncio.gather(*(self._vote(state, r, now) for r in recs))
        return merge_results(recs, results)

    async def _vote(
        self, state: OrchestraState, rec: dict[str, Any], now: datetime
    ) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, float]]:
        synthesis = synthesize(rec)
        if synthesis["counts"]["done"] == 0:
            why = "no subtask was done; there is nothing to vote on"
            patch, event, metrics = finish(rec, None, "rule:nothing_to_vote_on", why, now)
            return {**patch, "synthesis": synthesis}, [event], metrics
        team = team_records(state, rec)
        skills = sorted({s for step in rec["plan"]["subtasks"] for s in step["required_skills"]})
        competences = {a: competence(r, skills) for a, r in team.items()}
        voters = [r for r in team.values() if r.get("healthy", True)]
        ballots = await cast_votes(
            self.model, voters, rec["goal"], synthesis,
            window_seconds=self.vote_window, llm_timeout=self.llm_timeout,
        )  # fmt: skip
        out: dict[str, Any] = {"usage": rec.get("usage"), "fallbacks": rec.get("fallbacks")}
        for b in ballots:
            account(out, f"vote:{b['voter']}", b, b.get("usage"))
        settings = rec.get("consensus") or {}
        votes = self._tally(rec["id"], ballots, rec["agent_ids"], settings, competences, now)
        decision = votes["decision"]
        base = {**out, "synthesis": synthesis, "votes": votes}
        if decision["status"] == "decided":
            why = f"{decision['reason']}: {decision['tally']}"
            patch, event, metrics = finish(
                {**rec, **out}, decision["outcome"], f"vote:{decision['rule']}", why, now
            )
            return {**base, **patch}, [event], metrics
        quorum = float(settings.get("quorum", 0.5))
        conflict = split_vote_conflict(decision, competences, rec["agent_ids"], quorum)
        conflicts = {**(rec.get("conflicts") or {}), conflict["id"]: conflict}
        event = {
            "type": "collaboration_conflict",
            "collaboration_id": rec["id"],
            "conflict": conflict["id"],
        }
        return {**base, "status": "deciding", "conflicts": conflicts}, [event], {}

    def _tally(
        self,
        cid: str,
        ballots: list[dict[str, Any]],
        voters: list[str],
        settings: dict[str, Any],
        competences: dict[str, float],
        now: datetime,
    ) -> dict[str, Any]:
        """The ``votes`` field of the record: proposal, rule, ballots and the core's decision."""
        proposal = synthesis_proposal(cid)
        decision = tally(
            proposal, ballots, voters, settings=settings, competences=competences,
            opened_at=now.timestamp(), window_seconds=self.vote_window,
        )  # fmt: skip
        return {
            "proposal": proposal.to_dict(),
            "rule": decision.rule,
            "quorum": settings.get("quorum", 0.5),
            "window_seconds": self.vote_window,
            "ballots": ballots,
            "decision": decision.to_dict(),
            "competence": competences,
        }

    async def conflict_resolution(self, state: OrchestraState) -> dict[str, Any]:
        """Resolve every open conflict (concurrently); a resolved split vote ends its collaboration."""
        now = self.clock()
        recs = [
            r
            for r in (state.get("collaborations") or {}).values()
            if r.get("status") in ACTIVE
            and any(c["status"] == "open" for c in (r.get("conflicts") or {}).values())
        ]
        results = await asyncio.gather(*(self._resolve(r, now) for r in recs))
        return merge_results(recs, results)

    async def _resolve(
        self, rec: dict[str, Any], now: datetime
    ) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, float]]:
        conflicts = {k: dict(c) for k, c in (rec.get("conflicts") or {}).items()}
        opened = [c for c in conflicts.values() if c["status"] == "open"]
        rulings = await asyncio.gather(
            *(
                resolve_conflict(self.model, c, rec["goal"], time_limit=self.mediation_timeout)
                for c in opened
            )
        )
        out: dict[str, Any] = {"usage": rec.get("usage"), "fallbacks": rec.get("fallbacks")}
        events = []
        for conflict, ruling in zip(opened, rulings, strict=True):
            account(out, f"mediation:{conflict['id']}", ruling, ruling.pop("usage", None))
            conflict.update(
                status="resolved", resolution={**ruling, "resolved_at": now.isoformat()}
            )
            events.append(
                {
                    "type": "collaboration_conflict_resolved",
                    "collaboration_id": rec["id"],
                    "conflict": conflict["id"],
                    "decision": ruling["decision"],
                    "decided_by": ruling["decided_by"],
                }
            )
        patch: dict[str, Any] = {**out, "conflicts": conflicts}
        split = conflicts.get("split_vote")
        if rec["status"] == "deciding" and split and split.get("resolution"):
            res = split["resolution"]
            decision = res["decision"] if res["decision"] in ("approve", "reject") else None
            done, event, metrics = finish(
                {**rec, **patch}, decision, res["decided_by"], res["rationale"], now
            )
            return {**patch, **done}, [*events, event], metrics
        return patch, events, {}
