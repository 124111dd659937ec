"""Measurements of ``bench_vs_peers``: tokens of the recorded requests, timings, the tables.

What is counted (the same for every system):

* prompt tokens: ``stellar_graph.tokens.count_message_tokens`` (OpenAI's chat accounting,
  o200k_base for gpt-4o-mini) on the request's ``messages``; plus, in a separate column, the
  tokens of the request's ``tools`` and ``response_format`` as compact JSON: the API bills
  schemas as prompt tokens too, but renders them its own way, so that column is an estimate;
* completion tokens: the reply's text, or each tool call's name plus JSON arguments;
* agent time: the union, over the run, of the server-side intervals of *work* calls (from
  request read to reply ready, the simulated latency included). For one task at a time this is
  the plain sum of the work calls' latencies; when tasks overlap it counts overlapping calls
  once, so it stays the time an LLM was busy doing agent work;
* overhead per task: (wall time - agent time) / tasks. Routing calls are overhead.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from langchain_core.messages import convert_to_messages

from _peers_server import Call
from _peers_systems import Outcome
from _peers_workload import Workload
from stellar_graph.tokens import count_message_tokens, count_tokens

__all__ = ["RunMetrics", "busy_time", "call_tokens", "measure_run", "median_run"]

MODEL = "gpt-4o-mini"


@dataclass
class RunMetrics:
    """Everything measured for one system in one run (one mode, one repetition)."""

    system: str
    label: str
    mode: str
    tasks: int
    routing_calls: int = 0
    work_calls: int = 0
    prompt_tokens: int = 0
    schema_tokens: int = 0
    completion_tokens: int = 0
    routing_tokens: int = 0
    routed_ok: int = 0
    answered_ok: int = 0
    wall: float = 0.0
    agent_time: float = 0.0
    checkpointer: dict[str, tuple[int, float]] = field(default_factory=dict)
    task_walls: list[float] = field(default_factory=list)

    @property
    def total_tokens(self) -> int:
        """Prompt (messages and schemas) plus completion tokens."""
        return self.prompt_tokens + self.schema_tokens + self.completion_tokens

    @property
    def wall_per_task(self) -> float:
        """Seconds of wall time per task."""
        return self.wall / self.tasks

    @property
    def agent_per_task(self) -> float:
        """Seconds of agent (work-call) time per task."""
        return self.agent_time / self.tasks

    @property
    def overhead_per_task(self) -> float:
        """(wall - agent time) / tasks, in seconds."""
        return (self.wall - self.agent_time) / self.tasks

    def quarter_walls(self) -> tuple[float, float]:
        """Mean wall time per task over the first and the last quarter of a sequential run."""
        k = max(1, len(self.task_walls) // 4)
        return mean(self.task_walls[:k]), mean(self.task_walls[-k:])

    @property
    def checkpoint_per_task(self) -> float:
        """Seconds spent awaiting the checkpointer, per task."""
        return sum(seconds for _, seconds in self.checkpointer.values()) / self.tasks

    @property
    def checkpoint_writes_per_task(self) -> float:
        """``aput`` calls (checkpoints written) per task."""
        return self.checkpointer.get("aput", (0, 0.0))[0] / self.tasks


def call_tokens(call: Call) -> tuple[int, int, int]:
    """``(message prompt tokens, schema tokens, completion tokens)`` of one recorded call."""
    body = call.body
    messages = count_message_tokens(convert_to_messages(body.get("messages") or []), MODEL)
    schema = sum(
        count_tokens(json.dumps(body[key], separators=(",", ":")), MODEL)
        for key in ("tools", "response_format")
        if body.get(key)
    )
    reply = call.reply
    completion = count_tokens(str(reply.get("content") or ""), MODEL)
    for tool_call in reply.get("tool_calls") or []:
        completion += count_tokens(tool_call["name"], MODEL)
        completion += count_tokens(json.dumps(tool_call.get("arguments") or {}), MODEL)
    return messages, schema, completion


def busy_time(calls: Sequence[Call]) -> float:
    """Length of the union of the calls' ``[started, finished]`` intervals."""
    total, end = 0.0, float("-inf")
    for call in sorted(calls, key=lambda c: c.started):
        if call.started > end:
            total += call.finished - call.started
            end = call.finished
        elif call.finished > end:
            total += call.finished - end
            end = call.finished
    return total


def measure_run(
    base: RunMetrics, workload: Workload, calls: Sequence[Call], outcomes: Sequence[Outcome]
) -> RunMetrics:
    """Fill ``base`` (which carries system, mode, wall time and checkpointer stats) from the log."""
    for call in calls:
        if call.kind == "work":
            base.work_calls += 1
        else:
            base.routing_calls += 1
        prompt, schema, completion = call_tokens(call)
        base.prompt_tokens += prompt
        base.schema_tokens += schema
        base.completion_tokens += completion
        if call.kind != "work":
            base.routing_tokens += prompt + schema + completion
    base.agent_time = busy_time([c for c in calls if c.kind == "work"])
    workers: dict[str, list[str]] = {}
    for call in calls:
        if call.kind == "work":
            workers.setdefault(call.task_id, []).append(call.caller)
    for outcome in outcomes:
        bt = workload.by_id[outcome.task_id]
        claimed_ok = outcome.agent is None or outcome.agent == bt.owner
        if workers.get(bt.id) == [bt.owner] and claimed_ok:
            base.routed_ok += 1
        if outcome.answer == bt.answer:
            base.answered_ok += 1
    return base


def median_run(runs: Sequence[RunMetrics]) -> RunMetrics:
    """The repetition whose overhead per task is the median (counts are equal across repetitions)."""
    ordered = sorted(runs, key=lambda r: r.overhead_per_task)
    return ordered[(len(ordered) - 1) // 2]


def spread(runs: Sequence[RunMetrics]) -> str:
    """Min-max of overhead per task over repetitions, in ms (empty for one repetition)."""
    if len(runs) < 2:
        return ""
    values = [r.overhead_per_task * 1e3 for r in runs]
    return f"{min(values):.1f}-{max(values):.1f}"


def mean(values: Sequence[float]) -> float:
    """Mean, 0.0 for no values."""
    return statistics.fmean(values) if values else 0.0


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain-text table, first column left-aligned, the others right-aligned."""
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=True)]

    def line(cells: Sequence[Any]) -> str:
        parts = [
            str(c).ljust(w) if i == 0 else str(c).rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    return "\n".join([line(headers), "  ".join("-" * w for w in widths), *(line(r) for r in rows)])
