"""Performance metrics, computed from the checkpointed state (pure functions).

Definitions (see ``docs/metrics.md``):

- ``task_allocation.efficiency`` = completed / (completed + failed + refused) over finished
  tasks; ``None`` until a task finished.
- ``task_allocation.allocations``/``refusals``: allocator decisions (a re-allocation counts again).
- ``performance.throughput_per_minute`` = completed tasks / wall-clock minutes between the first
  submission and the last finish; ``None`` until a task completed.
- ``performance.mean_latency_seconds`` = mean of (finished_at − submitted_at) over finished tasks.
- ``performance.latency_seconds`` = p50 / p90 / p99 of the same spans over finished tasks still on
  the board, nearest-rank (the smallest span with at least p% of the spans at or below it).
- ``performance.throughput``: alias of ``performance.throughput_per_minute`` (tasks per minute).
- ``resources.busy_minutes[agent]`` = Σ (finished_at − started_at) in minutes over tasks on the
  board with that ``agent_id``, a ``started_at`` and a ``finished_at``; 0.0 for registered agents
  without one.
- ``resources.utilisation[agent]`` = busy_minutes / (capacity × span), span = minutes from the
  first ``submitted_at`` to the last ``finished_at`` on the board; capacity is the agent's
  ``capacity`` (3, the allocator's default, when missing). Not clipped: above 1 would reveal a
  capacity bug. ``{}`` while there is no span (no finished task).
- ``tokens.input``/``tokens.output``: prompt and completion tokens of every model response
  (agents doing tasks and collaboration coordination steps).
- ``tokens.routing`` = the ``routing_input_tokens``/``routing_output_tokens`` counters and
  ``collaboration_llm_calls``: the coordination LLM steps (planner, voters, mediator, bid notes)
  of finished collaborations. The allocator makes no LLM call (its routing is deterministic
  scoring).
- ``tokens.work`` = ``tokens.input``/``tokens.output`` − ``tokens.routing``: agents doing tasks,
  from the model responses' ``usage_metadata``.
- ``tokens.estimated_prompt`` = Σ ``estimated_prompt_tokens`` over the allocations (tiktoken
  estimates made at allocation; ``None`` skipped).
- ``collaboration.success_rate`` = succeeded / (succeeded + failed + no_decision) over
  collaborations that ran to their end; ``None`` until one finished.
- ``adaptation``: ``learning_score``, ``decisions`` and ``weights`` from ``state["learning"]``
  (``None``, 0, ``None`` until the learning component records them). ``learning_score`` =
  V_live − V_uniform over the logged allocation decisions (see
  :class:`stellar_graph.learning.LearningScore`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from stellar_graph.collaboration.stats import collaboration_metrics
from stellar_graph.models import DEFAULT_CAPACITY

__all__ = ["performance_metrics"]


def performance_metrics(state: Mapping[str, Any]) -> dict[str, Any]:
    """The metrics tree of one orchestra thread."""
    tasks: Mapping[str, Mapping[str, Any]] = state.get("tasks") or {}
    counters: Mapping[str, float] = state.get("metrics") or {}
    statuses = Counter(t.get("status") for t in tasks.values())
    for key, value in counters.items():  # tasks pruned from the board by maintenance still count
        if key.startswith("pruned_") and key not in {"pruned_tasks", "pruned_allocations"}:
            statuses[key.removeprefix("pruned_")] += int(value)
    finished = statuses["completed"] + statuses["failed"] + statuses["refused"]
    samples = counters.get("latency_samples", 0)
    throughput = _throughput(tasks)
    busy = _busy_minutes(tasks, state.get("agents") or {})
    routing_in = int(counters.get("routing_input_tokens", 0))
    routing_out = int(counters.get("routing_output_tokens", 0))
    learning: Mapping[str, Any] = state.get("learning") or {}
    return {
        "task_allocation": {
            "efficiency": statuses["completed"] / finished if finished else None,
            "allocations": int(counters.get("allocations", 0)),
            "refusals": int(counters.get("refusals", 0)),
        },
        "tasks": {
            "submitted": int(counters.get("tasks_submitted", 0)),
            "by_status": dict(statuses),
            "completed": statuses["completed"],
            "failed": statuses["failed"],
        },
        "performance": {
            "throughput_per_minute": throughput,
            "throughput": throughput,
            "mean_latency_seconds": counters.get("latency_seconds_total", 0.0) / samples if samples else None,
            "latency_seconds": _latency_percentiles(tasks),
            "agent_calls": int(counters.get("agent_calls", 0)),
            "control_runs": int(counters.get("control_runs", 0)),
        },
        "resources": {
            "busy_minutes": {a: round(m, 6) for a, m in busy.items()},
            "utilisation": _utilisation(tasks, state.get("agents") or {}, busy),
        },
        "tokens": {
            "input": int(counters.get("input_tokens", 0)),
            "output": int(counters.get("output_tokens", 0)),
            "routing": {
                "input": routing_in,
                "output": routing_out,
                "calls": int(counters.get("collaboration_llm_calls", 0)),
            },
            "work": {
                "input": int(counters.get("input_tokens", 0)) - routing_in,
                "output": int(counters.get("output_tokens", 0)) - routing_out,
            },
            "estimated_prompt": sum(
                int(a["estimated_prompt_tokens"])
                for a in (state.get("allocations") or {}).values()
                if a.get("estimated_prompt_tokens") is not None
            ),
        },
        "collaboration": collaboration_metrics(state),
        "adaptation": {
            "learning_score": learning.get("learning_score"),
            "decisions": learning.get("decisions", 0),
            "weights": learning.get("weights"),
        },
    }


def _latency_percentiles(tasks: Mapping[str, Mapping[str, Any]]) -> dict[str, float] | None:
    """p50 / p90 / p99 of (finished_at - submitted_at) in seconds over finished tasks still on the
    board, by the nearest-rank method (the smallest value with at least p% of samples at or below)."""
    spans = sorted(
        (datetime.fromisoformat(t["finished_at"]) - datetime.fromisoformat(t["submitted_at"])).total_seconds()
        for t in tasks.values()
        if t.get("finished_at") and t.get("submitted_at")
    )
    if not spans:
        return None
    return {f"p{p}": spans[max(math.ceil(p / 100 * len(spans)) - 1, 0)] for p in (50, 90, 99)}


def _throughput(tasks: Mapping[str, Mapping[str, Any]]) -> float | None:
    done = [t for t in tasks.values() if t.get("status") == "completed" and t.get("finished_at")]
    starts = [t["submitted_at"] for t in tasks.values() if t.get("submitted_at")]
    if not done or not starts:
        return None
    first = min(datetime.fromisoformat(s) for s in starts)
    last = max(datetime.fromisoformat(t["finished_at"]) for t in done)
    minutes = max((last - first).total_seconds() / 60, 1e-9)
    return len(done) / minutes


def _busy_minutes(
    tasks: Mapping[str, Mapping[str, Any]], agents: Mapping[str, Any]
) -> dict[str, float]:
    """Agent -> Σ (finished_at − started_at) in minutes over its timed tasks on the board; 0.0 for
    registered agents without one."""
    busy = dict.fromkeys(agents, 0.0)
    for t in tasks.values():
        if t.get("agent_id") and t.get("started_at") and t.get("finished_at"):
            span = datetime.fromisoformat(t["finished_at"]) - datetime.fromisoformat(t["started_at"])
            busy[t["agent_id"]] = busy.get(t["agent_id"], 0.0) + span.total_seconds() / 60
    return busy


def _utilisation(
    tasks: Mapping[str, Mapping[str, Any]], agents: Mapping[str, Any], busy: Mapping[str, float]
) -> dict[str, float]:
    """Agent -> busy minutes / (capacity × minutes from the first submission to the last finish on
    the board), not clipped; ``{}`` while there is no such span."""
    starts = [datetime.fromisoformat(t["submitted_at"]) for t in tasks.values() if t.get("submitted_at")]
    ends = [datetime.fromisoformat(t["finished_at"]) for t in tasks.values() if t.get("finished_at")]
    if not starts or not ends:
        return {}
    span = (max(ends) - min(starts)).total_seconds() / 60
    if span <= 0:
        return {}
    return {
        a: round(minutes / (int((agents.get(a) or {}).get("capacity", DEFAULT_CAPACITY)) * span), 6)
        for a, minutes in busy.items()
    }
