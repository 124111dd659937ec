"""Where time goes, and how each component is doing (pure functions).

Per-node timings come from the thread's checkpoint history: with checkpoints after every
superstep, the time between a checkpoint and the next one is the duration of the step that ran
the nodes listed in the first one's ``next``. Nodes that ran in parallel in one step (agent
types working side by side) are each charged the whole step, since the step lasted as long as
its slowest branch; a node's share is its charged time over the sum of all charges.

Per-agent timings come from the task reports (``wall_seconds`` of each attempt), plus what
:mod:`~stellar_graph.ops.maintenance` summarised of tasks already pruned from the board.

Example:
    >>> node_timings([{"created_at": "2026-01-01T00:00:00+00:00", "next": ["allocator"]},
    ...               {"created_at": "2026-01-01T00:00:02+00:00", "next": []}])["allocator"]["seconds"]
    2.0
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from stellar_graph.board import FINISHED

__all__ = ["agent_timings", "bottleneck_report", "node_timings", "overall_status", "top_shares"]

_ORDER = {"ok": 0, "degraded": 1, "down": 2}
_ATTEMPTED = FINISHED - {"refused"}


def node_timings(steps: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """Seconds charged to each node over consecutive checkpoints, oldest first.

    Args:
        steps: ``{"created_at": iso, "next": [node names]}`` per checkpoint, oldest first (from
            ``aget_state_history``). A step whose successor belongs to a new run (``next`` empty)
            is not charged.

    Returns:
        node -> ``{"seconds", "steps"}``. Internal nodes (``__start__``) are left out.
    """
    charged: dict[str, dict[str, float]] = {}
    for here, after in zip(steps, steps[1:], strict=False):
        names = [n for n in here.get("next") or [] if not n.startswith("__")]
        if not names:
            continue
        seconds = (_when(after["created_at"]) - _when(here["created_at"])).total_seconds()
        for name in dict.fromkeys(names):
            row = charged.setdefault(name, {"seconds": 0.0, "steps": 0})
            row["seconds"] += max(seconds, 0.0)
            row["steps"] += 1
    return charged


def _when(value: str | datetime) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def agent_timings(
    tasks: Mapping[str, Mapping[str, Any]], pruned: Mapping[str, Any] | None = None
) -> dict[str, dict[str, float]]:
    """Agent id -> ``{"seconds", "tasks", "failed"}`` from the reports on the board and pruned ones."""
    rows: dict[str, dict[str, float]] = {}
    for task in tasks.values():
        report = task.get("report") or {}
        agent_id = report.get("agent_id") or task.get("agent_id")
        if not agent_id or task.get("status") not in _ATTEMPTED:
            continue
        row = rows.setdefault(agent_id, {"seconds": 0.0, "tasks": 0, "failed": 0})
        row["seconds"] += float(report.get("wall_seconds") or task.get("wall_seconds") or 0.0)
        row["tasks"] += 1
        row["failed"] += int(task["status"] != "completed")
    for agent_id, old in ((pruned or {}).get("agents") or {}).items():
        row = rows.setdefault(agent_id, {"seconds": 0.0, "tasks": 0, "failed": 0})
        row["seconds"] += float(old.get("wall_seconds", 0.0))
        row["tasks"] += int(old.get("tasks", 0))
        row["failed"] += int(old.get("failed", 0))
    return rows


def top_shares(
    rows: Mapping[str, Mapping[str, float]], key: str, *, count: str, top: int
) -> dict[str, Any]:
    """The ``top`` rows by ``seconds``, largest first, each with its share of the total.

    Args:
        rows: name -> ``{"seconds", count, ...}``.
        key: the name's field in each output row (``node``, ``agent_id``).
        count: the field that ``mean_seconds`` divides by (``steps``, ``tasks``).
        top: how many rows.
    """
    total = sum(r["seconds"] for r in rows.values())
    ranked = sorted(rows.items(), key=lambda item: (-item[1]["seconds"], item[0]))
    out = []
    for name, row in ranked[:top]:
        entry: dict[str, Any] = {key: name, **row, "seconds": round(row["seconds"], 6)}
        entry["share"] = round(row["seconds"] / total, 4) if total > 0 else 0.0
        entry["mean_seconds"] = round(row["seconds"] / row[count], 6) if row.get(count) else None
        out.append(entry)
    return {"total_seconds": round(total, 6), "top": out}


def bottleneck_report(
    nodes: Mapping[str, Any], agents: Mapping[str, Any], agent_count: int
) -> list[str]:
    """Plain-language findings from the two rankings (empty when nothing stands out)."""
    findings: list[str] = []
    if agents["top"] and agent_count > 1:
        lead = agents["top"][0]
        fair = 1 / agent_count
        if lead["share"] >= max(0.5, 1.5 * fair):
            findings.append(
                f"agent {lead['agent_id']} took {lead['share']:.0%} of all agent time ({agent_count} agents): "
                "register another instance of its type or raise its capacity"
            )
    if nodes["top"]:
        lead = nodes["top"][0]
        if (
            lead["node"] in {"allocator", "dispatch", "intake", "monitor", "optimizer"}
            and lead["share"] >= 0.5
        ):
            findings.append(
                f"orchestration node {lead['node']} took {lead['share']:.0%} of step time: for large batches try "
                "`task_allocation.strategy: fast`, and prune the board (perform_system_maintenance)"
            )
    return findings


def overall_status(statuses: Iterable[str]) -> str:
    """The worst of the components' statuses (``ok`` < ``degraded`` < ``down``)."""
    worst = "ok"
    for status in statuses:
        if _ORDER.get(status, 1) > _ORDER[worst]:
            worst = status if status in _ORDER else "degraded"
    return worst
