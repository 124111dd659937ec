"""Where time goes, and how each component is doing (pure functions).

Per-node timings of the control graph are measured by the runtime as its runs stream (a control
run checkpoints once, at its end, so its history cannot tell the steps apart); a node's share is
its time over the sum of all nodes' times.

Per-agent timings come from the task reports (``wall_seconds`` of each attempt), plus what
:mod:`~stellar_graph.ops.maintenance` summarised of tasks already pruned from the board.

Example:
    >>> top_shares({"allocator": {"seconds": 2.0, "steps": 1}}, "node", count="steps", top=1)["top"][0]["share"]
    1.0
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from stellar_graph.board import FINISHED

__all__ = ["agent_timings", "bottleneck_report", "overall_status", "top_shares"]

_ORDER = {"ok": 0, "degraded": 1, "down": 2}
_ATTEMPTED = FINISHED - {"refused"}


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
