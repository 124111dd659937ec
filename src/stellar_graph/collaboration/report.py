"""Human-readable views of a collaboration record, for the CLI: plan, bids, votes, outcome."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stellar_graph.collaboration.stats import collaboration_metrics

__all__ = ["collaboration_progress_line", "collaboration_summary", "collaboration_totals"]

_WIDTH = 60


def _cut(text: object, width: int = _WIDTH) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 3] + "..."


def collaboration_progress_line(event: Mapping[str, Any]) -> str:
    """One progress line for a ``collaboration_*`` event."""
    kind = str(event.get("type", "")).removeprefix("collaboration_") or "event"
    cid = event.get("collaboration_id")
    if kind == "started":
        return f"  collab      {cid}: planned {event.get('subtasks')} ({event.get('plan_source')})"
    if kind in {"subtask_completed", "subtask_failed"}:
        return f"  collab      {cid}/{event.get('subtask_id')} -> {event.get('agent_id')}: {kind.removeprefix('subtask_')}"
    if kind == "conflict_resolved":
        return f"  collab      {cid}: {event.get('conflict')} -> {event.get('decision')} ({event.get('decided_by')})"
    if kind == "finished":
        return f"  collab      {cid}: {event.get('status')} ({event.get('decided_by')})"
    detail = str(event.get("message") or event.get("error") or event.get("conflict") or "")
    detail = detail.removeprefix(f"{kind}: ")  # "queued: 1 active..." after "queued": say it once
    return f"  collab      {cid}: {kind} {_cut(detail, 90)}".rstrip()


def collaboration_summary(record: Mapping[str, Any]) -> str:
    """The plan, the bids, the votes, the conflicts and the outcome of one collaboration."""
    cid, status = record.get("id"), record.get("status")
    lines = ["", f"collaboration {cid}: {status}"]
    if status in {"invalid", "rejected"} or not record.get("plan"):
        lines.append(f"  {record.get('error') or record.get('message') or 'not started'}")
        return "\n".join(lines)
    goal = record["goal"]
    lines.append(
        f"  goal: {_cut(goal['description'])}; criteria: {', '.join(goal['success_criteria'])}"
    )
    lines += _plan_lines(record)
    lines += _bid_lines(record)
    lines += _vote_lines(record)
    for conflict in (record.get("conflicts") or {}).values():
        res = conflict.get("resolution") or {}
        why = (
            f"; fallback {res['fallback']}"
            if res.get("fallback") not in (None, "simulated")
            else ""
        )
        lines.append(
            f"  conflict {conflict['id']}: {res.get('decision')} by {res.get('decided_by')}{why} - {_cut(res.get('rationale', ''), 70)}"
        )
    outcome = record.get("outcome") or {}
    lines.append(
        f"  outcome: {outcome.get('status')}, decision {outcome.get('decision')}, "
        f"decided by {outcome.get('decided_by')} ({_cut(outcome.get('reason', ''), 70)})"
    )
    return "\n".join(lines)


def collaboration_totals(state: Mapping[str, Any]) -> str:
    """One line: how many collaborations ended how, the success rate, LLM calls and conflicts."""
    stats = collaboration_metrics(state)
    rate = stats["success_rate"]
    by = ", ".join(f"{n} {s}" for s, n in sorted(stats["by_status"].items()))
    return (
        f"\ncollaborations: {by}; success rate {'-' if rate is None else f'{rate:.2f}'}; "
        f"{stats['llm_calls']} LLM calls, {stats['llm_fallbacks']} fallbacks; {stats['conflicts']} conflicts "
        f"({stats['conflicts_by_mediator']} by the mediator, {stats['conflicts_by_rule']} by rule)"
    )


def _plan_lines(record: Mapping[str, Any]) -> list[str]:
    plan = record["plan"]
    source = plan["source"] + (f", fallback {plan['fallback']}" if plan.get("fallback") else "")
    lines = [f"  plan ({source}): {_cut(plan.get('rationale', ''), 90)}"]
    subtasks = record.get("subtasks") or {}
    for step in plan["subtasks"]:
        st = subtasks.get(step["id"], {})
        deps = ",".join(step["depends_on"]) or "-"
        wave = f" wave {st['wave']}" if st.get("wave") else ""
        lines.append(
            f"    {step['id']:<4} {_cut(step['role'], 18):<18} skills {_cut(', '.join(step['required_skills']), 40):<40} "
            f"after {deps:<8} -> {st.get('agent_id') or '-':<14} {st.get('status')}{wave}"
        )
    return lines


def _bid_lines(record: Mapping[str, Any]) -> list[str]:
    lines = ["  bids:"]
    for rnd in record.get("rounds") or []:
        awards = {a["subtask_id"]: a for a in rnd["awards"]}
        by_subtask: dict[str, list[str]] = {}
        for bid in rnd["bids"]:
            award = awards.get(bid["subtask_id"], {})
            if bid["kind"] == "refuse":
                text = f"{bid['agent_id']} refuses ({_cut(bid.get('reason', ''), 40)})"
            else:
                mark = (
                    "AWARDED"
                    if award.get("agent_id") == bid["agent_id"]
                    else bid["status"]
                    if bid["status"] != "accepted"
                    else "rejected"
                )
                text = f"{bid['agent_id']} {bid['score']:.3f} {mark}"
            by_subtask.setdefault(bid["subtask_id"], []).append(text)
        for sid, texts in by_subtask.items():
            reason = awards.get(sid, {}).get("reason", "")
            tail = "" if reason == "awarded" else f"  [not awarded: {reason}]"
            lines.append(f"    round {rnd['round']} {sid:<4} " + " | ".join(texts) + tail)
    return lines


def _vote_lines(record: Mapping[str, Any]) -> list[str]:
    votes = record.get("votes")
    if not votes:
        return []
    decision = votes["decision"]
    tally = ", ".join(f"{k} {v:g}" for k, v in decision["tally"].items())
    lines = [
        f"  votes ({votes['rule']}, quorum {votes['quorum']:g}): {tally} -> {decision['outcome'] or 'no decision'} ({decision['reason']})"
    ]
    for ballot in votes["ballots"]:
        source = ballot["source"] + (f"/{ballot['fallback']}" if ballot.get("fallback") else "")
        lines.append(
            f"    {ballot['voter']:<14} {ballot.get('choice') or 'late':<8} [{source}] {_cut(ballot.get('reason', ''), 90)}"
        )
    return lines
