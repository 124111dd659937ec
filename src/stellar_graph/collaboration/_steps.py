"""The collaboration nodes' functions (see :mod:`stellar_graph.collaboration.nodes` for the flow).

:class:`StepsBase` holds what every node shares (model, agent subgraphs, config, clock and the
derived time limits); :class:`WorkSteps` plans, negotiates and executes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Annotated, Any

from langchain_core.language_models import BaseChatModel
from langgraph.errors import GraphBubbleUp
from langgraph.types import Command, Send
from typing_extensions import TypedDict

from stellar_graph.collaboration._contract import close_pending_round, new_net, open_round_with_bids
from stellar_graph.collaboration._execution import (
    admit,
    apply_awards,
    apply_report,
    close_execution,
    packets,
    ready,
)
from stellar_graph.collaboration._records import (
    ACTIVE,
    account,
    new_record,
    route_collaborations,
    team_records,
)
from stellar_graph.collaboration.planning import plan_goal
from stellar_graph.config import OrchestraConfig
from stellar_graph.models import DEFAULT_CAPACITY
from stellar_graph.negotiation import ContractNet
from stellar_graph.state import OrchestraState, merge_records

__all__ = [
    "MANAGER",
    "CollaborationScratch",
    "StepsBase",
    "WorkPacket",
    "WorkSteps",
    "bump",
    "merge_results",
]

logger = logging.getLogger(__name__)

MANAGER = "stellar-orchestra"
"""The Contract Net manager's name in the protocol log."""


class CollaborationScratch(OrchestraState, total=False):
    """The orchestra state plus the private channel the agent branches report through."""

    collab_reports: Annotated[dict[str, dict[str, Any]], merge_records]
    """Report key (collab/subtask/attempt) -> report; the join node consumes and deletes them."""


class WorkPacket(TypedDict):
    """One ``Send`` to ``collaboration_work``: a subtask, its agent and its dependencies' results."""

    collab_work: dict[str, Any]


class StepsBase:
    """What the node functions share: the model, the agent subgraphs, the config and the clock."""

    def __init__(
        self,
        model: BaseChatModel | None,
        agent_graphs: Mapping[str, Any],
        config: OrchestraConfig,
        clock: Callable[[], datetime],
    ) -> None:
        self.model, self.agent_graphs, self.config, self.clock = (
            model,
            dict(agent_graphs),
            config,
            clock,
        )
        self.llm_timeout = float(config.llm.timeout_seconds)
        self.vote_window = float(config.messaging.consensus_timeout_minutes) * 60
        self.mediation_timeout = min(
            float(config.collaboration.conflict_resolution_timeout_minutes) * 60, self.llm_timeout
        )


class WorkSteps(StepsBase):
    """Intake and planning, negotiation, and execution of the subtasks."""

    # -- collaboration: intake, admission, planning ----------------------------------------------
    async def collaboration(self, state: OrchestraState) -> dict[str, Any]:
        """Record new requests (queued or invalid), admit what the limit allows, plan those."""
        now = self.clock()
        collabs = dict(state.get("collaborations") or {})
        patches: dict[str, dict[str, Any]] = {}
        events: list[dict[str, Any]] = []
        metrics: dict[str, float] = {}
        seq = max((int(r.get("seq", 0)) for r in collabs.values()), default=0)
        fresh = []
        for i, raw in enumerate(state.get("start_collaborations") or []):
            seq += 1
            key, rec = new_record(
                raw, i, state.get("agents") or {}, {**collabs, **patches}, seq, now
            )
            patches[key] = rec
            if rec["status"] == "invalid":
                events.append(
                    {
                        "type": "collaboration_invalid",
                        "collaboration_id": key,
                        "error": rec["error"],
                    }
                )
                bump(metrics, "collaborations_invalid")
            else:
                fresh.append(key)
        merged = {**collabs, **patches}
        admitted = self._admit(merged, patches, fresh, now, events, metrics)
        plans = await asyncio.gather(*(self._plan(state, merged[c], now) for c in admitted))
        for cid, (patch, event) in zip(admitted, plans, strict=True):
            patches[cid] = {**patches.get(cid, {}), **patch}
            events.append(event)
        return {
            "start_collaborations": [],
            "collaborations": patches,
            "events": events,
            "metrics": metrics,
        }

    def _admit(
        self,
        merged: dict[str, dict[str, Any]],
        patches: dict[str, dict[str, Any]],
        fresh: list[str],
        now: datetime,
        events: list[dict[str, Any]],
        metrics: dict[str, float],
    ) -> list[str]:
        """Start queued collaborations (oldest first) while fewer than the limit are active.

        A new one that finds no room is queued, or rejected when its ``when_full`` (else the
        config's ``collaboration.overflow``, else ``queue``) says so.
        """
        limit = self.config.collaboration.max_concurrent_collaborations
        default_when_full = self.config.collaboration.overflow
        active = sum(1 for r in merged.values() if r.get("status") in ACTIVE)
        waiting = sorted(
            (r for r in merged.values() if r.get("status") == "queued"), key=lambda r: r["seq"]
        )
        admitted = []
        for rec in waiting:
            cid = rec["id"]
            if active < limit:
                active += 1
                admitted.append(cid)
                patches[cid] = {
                    **patches.get(cid, {}),
                    "status": "planning",
                    "started_at": now.isoformat(),
                    "message": None,
                }
                bump(metrics, "collaborations_started")
            elif cid in fresh:
                full = f"{active} collaboration(s) are active, the limit (collaboration.max_concurrent_collaborations) is {limit}"
                reject = (rec.get("when_full") or default_when_full) == "reject"
                patch, kind = _overflow(full, reject, now)
                patches[cid] = {**patches.get(cid, {}), **patch}
                events.append(
                    {
                        "type": f"collaboration_{kind}",
                        "collaboration_id": cid,
                        "message": patch["message"],
                    }
                )
                bump(metrics, f"collaborations_{kind}")
        return admitted

    async def _plan(
        self, state: OrchestraState, rec: dict[str, Any], now: datetime
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        team = team_records(state, rec)
        plan, usage = await plan_goal(
            self.model, rec["goal"], list(team.values()), time_limit=self.llm_timeout
        )
        out = {"usage": rec.get("usage"), "fallbacks": rec.get("fallbacks")}
        account(out, "planning", plan, usage)
        capacity = {a: max(int(r.get("capacity", DEFAULT_CAPACITY)) - int(r["load"]), 0) for a, r in team.items()}
        net = new_net(
            plan,
            rec["agent_ids"],
            rounds_limit=self.config.collaboration.negotiation_rounds_limit,
            bid_window=float(rec.get("bid_window_seconds", 30.0)),
            capacity=capacity,
            manager=MANAGER,
        )
        subtasks = {
            s["id"]: {
                "id": s["id"],
                "status": "open",
                "agent_id": None,
                "attempts": [],
                "success_criteria": s["success_criteria"],
                "reason": "not offered yet",
            }
            for s in plan["subtasks"]
        }
        patch = {
            **out,
            "status": "negotiating",
            "plan": plan,
            "subtasks": subtasks,
            "negotiation": net.to_dict(),
            "pending_round": None,
            "negotiation_stalled": False,
            "wave": 0,
            "planned_at": now.isoformat(),
        }
        event = {
            "type": "collaboration_started",
            "collaboration_id": rec["id"],
            "plan_source": plan["source"],
            "fallback": plan["fallback"],
            "subtasks": [s["id"] for s in plan["subtasks"]],
            "at": now.isoformat(),
        }
        return patch, event

    # -- negotiation -----------------------------------------------------------------------------
    async def negotiation(self, state: OrchestraState) -> dict[str, Any]:
        """One Contract Net round for every negotiating collaboration, concurrently."""
        now = self.clock()
        recs = [
            r
            for r in (state.get("collaborations") or {}).values()
            if r.get("status") == "negotiating"
        ]
        patches = await asyncio.gather(*(self._negotiate(state, r, now) for r in recs))
        return {"collaborations": {r["id"]: p for r, p in zip(recs, patches, strict=True)}}

    async def _negotiate(
        self, state: OrchestraState, rec: dict[str, Any], now: datetime
    ) -> dict[str, Any]:
        """Open a round (it may pause on claim conflicts), or close the paused one."""
        net = ContractNet.from_dict(rec["negotiation"])
        pending = rec.get("pending_round")
        if pending is None:
            team = team_records(state, rec, include_own=True)
            weights = self.config.task_allocation.weights
            pending, claims = await open_round_with_bids(
                net, rec, team, weights=weights, now=now, model=self.model, note_timeout=self.llm_timeout
            )  # fmt: skip
            if pending is None:
                return {
                    "status": "executing",
                    "negotiation": net.to_dict(),
                    "negotiation_stalled": True,
                }
            out: dict[str, Any] = {"usage": rec.get("usage"), "fallbacks": rec.get("fallbacks")}
            for a in (a for a in pending["answers"] if "note_source" in a):
                note = {"fallback": a.get("note_fallback"), "error": None}
                account(out, f"bid_note:{a['subtask_id']}:{a['agent_id']}", note, a.get("usage"))
            if claims:
                conflicts = {**(rec.get("conflicts") or {}), **{c["id"]: c for c in claims}}
                return {
                    **out,
                    "negotiation": net.to_dict(),
                    "pending_round": pending,
                    "conflicts": conflicts,
                }
            rec = {**rec, **out}
        return self._close_round(rec, net, pending)

    @staticmethod
    def _close_round(
        rec: dict[str, Any], net: ContractNet, pending: dict[str, Any]
    ) -> dict[str, Any]:
        winners = {
            c["details"]["subtask"]: c["resolution"]["decision"]
            for c in (rec.get("conflicts") or {}).values()
            if c["kind"] == "claim"
            and c["details"]["round"] == pending["round"]
            and c.get("resolution")
        }
        record = close_pending_round(net, pending, winners)
        return {
            "status": "executing",
            "negotiation": net.to_dict(),
            "pending_round": None,
            "rounds": [*(rec.get("rounds") or []), record],
            "subtasks": apply_awards(rec["subtasks"], record),
            # Nothing awarded and nothing changed: another round now would go the same way.
            "negotiation_stalled": not any(a["agent_id"] for a in record["awards"]),
            "usage": rec.get("usage"),
            "fallbacks": rec.get("fallbacks"),
        }

    # -- execution -------------------------------------------------------------------------------
    def dispatch(self, state: OrchestraState) -> Command[Any]:
        """Send the ready subtasks, or move each collaboration on (next round, or the vote)."""
        collabs = state.get("collaborations") or {}
        patches: dict[str, dict[str, Any] | None] = {}
        sends: list[Send] = []
        for rec in (r for r in collabs.values() if r.get("status") == "executing"):
            patch, work = self._dispatch_one(state, rec)
            patches[rec["id"]] = patch
            sends += [Send("collaboration_work", {"collab_work": p}) for p in work]
        update: dict[str, Any] = {"collaborations": patches}
        if sends:
            return Command(update=update, goto=sends)
        after = {**state, "collaborations": merge_records(dict(collabs), patches)}
        return Command(update=update, goto=route_collaborations(after))

    def _dispatch_one(
        self, state: OrchestraState, rec: dict[str, Any]
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        candidates = ready(rec)
        if candidates:
            wave = int(rec.get("wave", 0)) + 1
            admitted, conflict = admit(rec, candidates, wave)
            if conflict is not None:
                return {"conflicts": {**(rec.get("conflicts") or {}), conflict["id"]: conflict}}, []
            team = team_records(state, rec)
            subtasks = {sid: dict(st) for sid, st in rec["subtasks"].items()}
            for sid in admitted:
                subtasks[sid]["status"] = "running"
            return {"subtasks": subtasks, "wave": wave}, packets(rec, admitted, team, wave)
        net = ContractNet.from_dict(rec["negotiation"])
        if net.unassigned() and net.round < net.rounds_limit and not rec.get("negotiation_stalled"):
            return {"status": "negotiating"}, []
        subtasks, contradictions = close_execution(rec, net)
        conflicts = {**(rec.get("conflicts") or {}), **{c["id"]: c for c in contradictions}}
        return {"status": "voting", "subtasks": subtasks, "conflicts": conflicts}, []

    async def work(self, state: WorkPacket) -> dict[str, Any]:
        """Run one subtask on its awarded agent's subgraph; report through the private channel."""
        packet = state["collab_work"]
        agent, task = packet["agent"], packet["task"]
        graph = self.agent_graphs.get(agent.get("agent_node", ""))
        try:
            if graph is None:
                raise LookupError(
                    f"no agent subgraph for node {agent.get('agent_node')!r}; known: {sorted(self.agent_graphs)}"
                )
            out = await graph.ainvoke(
                {
                    "task": task,
                    "agent": agent,
                    "attempt": packet["attempt"],
                    "inbox": packet["inbox"],
                }
            )
            report = dict(out["report"])
        except GraphBubbleUp:
            raise
        except Exception as exc:  # an agent's crash is that subtask's failure, never its siblings'
            logger.warning(
                "agent %s failed on subtask %s: %s",
                agent["agent_id"],
                task["id"],
                type(exc).__name__,
            )
            report = {
                "task_id": task["id"],
                "agent_id": agent["agent_id"],
                "status": "failed",
                "result": "",
                "error": f"{type(exc).__name__}: {exc}",
                "usage": {},
                "simulated": False,
            }
        slim = {k: packet[k] for k in ("collab_id", "subtask_id", "attempt", "wave")}
        event = {
            "type": "collaboration_subtask_"
            + ("completed" if report["status"] == "completed" else "failed"),
            "collaboration_id": packet["collab_id"],
            "subtask_id": packet["subtask_id"],
            "agent_id": agent["agent_id"],
        }
        return {
            "collab_reports": {packet["key"]: {**slim, "agent": agent, "report": report}},
            "events": [event],
        }

    def join(self, state: CollaborationScratch) -> dict[str, Any]:
        """Record the wave's reports on the subtasks and in the negotiation, then delete them."""
        reports = state.get("collab_reports") or {}
        collabs = state.get("collaborations") or {}
        patches: dict[str, dict[str, Any]] = {}
        metrics: dict[str, float] = {}
        for key in sorted(reports):
            entry = reports[key]
            rec = collabs[entry["collab_id"]]
            patch = patches.setdefault(
                rec["id"],
                {
                    "subtasks": {s: dict(v) for s, v in rec["subtasks"].items()},
                    "net": ContractNet.from_dict(rec["negotiation"]),
                    "usage": dict(rec.get("usage") or {}),
                },
            )
            apply_report(
                rec, patch["subtasks"], patch["net"], entry, entry["report"], entry["agent"]
            )
            usage = entry["report"].get("usage") or {}
            patch["usage"]["agent_calls"] = patch["usage"].get("agent_calls", 0) + 1
            for k in ("input_tokens", "output_tokens"):
                patch["usage"][f"agent_{k}"] = patch["usage"].get(f"agent_{k}", 0) + int(
                    usage.get(k, 0)
                )
                bump(metrics, k, int(usage.get(k, 0)))
            bump(metrics, "agent_calls")
        out = {
            cid: {
                "subtasks": p["subtasks"],
                "negotiation": p["net"].to_dict(),
                "usage": p["usage"],
                "negotiation_stalled": False,
            }
            for cid, p in patches.items()
        }
        return {"collaborations": out, "collab_reports": dict.fromkeys(reports), "metrics": metrics}

    # -- consensus and conflicts -----------------------------------------------------------------


def _overflow(full: str, reject: bool, now: datetime) -> tuple[dict[str, Any], str]:
    if reject:
        message = f"rejected: {full}. Fix: retry when one finishes, or raise the limit."
        return {
            "status": "rejected",
            "finished_at": now.isoformat(),
            "message": message,
        }, "rejected"
    return {"message": f"queued: {full}; it starts when one finishes."}, "queued"


def merge_results(
    recs: list[dict[str, Any]],
    results: list[tuple[dict[str, Any], list[dict[str, Any]], dict[str, float]]],
) -> dict[str, Any]:
    patches: dict[str, dict[str, Any]] = {}
    events: list[dict[str, Any]] = []
    metrics: dict[str, float] = {}
    for rec, (patch, evs, counters) in zip(recs, results, strict=True):
        patches[rec["id"]] = patch
        events += evs
        for k, v in counters.items():
            bump(metrics, k, v)
    return {"collaborations": patches, "events": events, "metrics": metrics}


def bump(metrics: dict[str, float], key: str, by: float = 1) -> None:
    metrics[key] = metrics.get(key, 0) + by
